"""The champion a gate compares a challenger with, as both engines' gates read it.

Its model files must match its manifest (size and SHA-256) before anything is unpickled:
a champion whose model is damaged fails the job. Its row hashes (the files the gate's
"rows the champion never saw" and "labels changed" checks read) are checked apart: when
they are damaged, missing or of another kind, the gate compares on the same-data path and
says why, rather than failing a challenger for a file only the comparison needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server.registry import fsio
from modeld_server.registry.manifest import Manifest
from modeld_server.training import gate

ROW_FILES = (gate.ROWS_FILE, gate.LABELED_ROWS_FILE)

Kept = tuple[np.ndarray, np.ndarray | None]
"""A champion's row hashes: of its feature columns, and of those with its label."""


def read_champion(info: dict[str, Any]
                  ) -> tuple[Manifest, Path, Kept | None, str]:
    """The champion's manifest and folder, its model files checked against the manifest
    before anything is unpickled, and its row hashes, or None and why they cannot serve.

    A damaged row file (missing, truncated, other bytes) costs the gate its unseen-rows
    and changed-labels checks, not the job: the model files alone must be intact.
    """
    from modeld_server.registry.store import RegistryStore

    store = RegistryStore(Path(info["registry"]))
    manifest = store.read_manifest(info["model"], info["version"])
    listed = manifest.artifacts
    model_only = dataclasses.replace(manifest, artifacts={
        k: v for k, v in listed.items() if k not in ROW_FILES})
    store.verify(info["model"], info["version"], model_only)
    folder = store.paths(info["model"]).version(info["version"])
    rows, why = champion_rows(folder, listed)
    return manifest, folder, rows, why


def champion_rows(folder: Path, listed: Any
                  ) -> tuple[Kept | None, str]:
    """The row hashes a version kept, checked against its manifest's `listed` artifacts;
    or None and why not."""
    if gate.ROWS_FILE not in listed:
        return None, "it kept no row hashes"
    loaded: list[np.ndarray | None] = []
    for name in ROW_FILES:
        if name not in listed:
            loaded.append(None)
            continue
        path = folder / name
        try:
            size = path.stat().st_size
            if size != listed[name].get("size") or fsio.sha256_file(path) != \
                    listed[name].get("sha256"):
                return None, f"its {name} differs from its manifest"
            values = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None, f"its {name} is missing"
        except (OSError, ValueError, EOFError) as exc:
            return None, f"its {name} cannot be read ({type(exc).__name__})"
        if values.ndim != 1 or values.dtype != np.uint64:
            return None, f"its {name} holds {values.dtype} of shape {values.shape}, not hashes"
        loaded.append(values)
    assert loaded[0] is not None
    return (loaded[0], loaded[1]), ""
