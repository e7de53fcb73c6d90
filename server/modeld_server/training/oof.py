"""Each version's out-of-fold predictions, kept so that a retrain's gate need not refit them.

Retraining on the same data, the quality gate compares the challenger with the champion's
recipe refitted in the challenger's folds (gate.py). When those folds are the ones the
champion was cross-validated in (same dataset bytes, row selection, validation options,
task, fold count and seed, and the same library versions), the refit repeats the champion's
own cross-validation fit for fit: its held-out predictions are the ones the champion's
training computed. So every version stores them (float32, compressed: `oof.npz`, checked
against the manifest like every artifact), with the key of the folds they came from, and
the gate reuses them when the keys are equal, refitting otherwise.

Both paths score float32 predictions (`as_stored`), so they give the same gate metrics,
not merely close ones. A calibrated champion is always refitted: its stored predictions
come from calibration's own cross-validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server.registry.manifest import Manifest
from modeld_server.types import TrainSpec

OOF_FILE = "oof.npz"


def fold_key(spec: TrainSpec, dataset_sha256: str, rows: int,
             libraries: dict[str, str]) -> dict[str, Any]:
    """What decides which rows fall in which fold, and what a refit in them would give; as
    the manifest's JSON will hold it (tuples as lists), so keys compare equal."""
    key = {"dataset_sha256": dataset_sha256, "selection": spec.dataset.to_json(),
           "validation": dict(spec.validation), "task": spec.task.value,
           "cv_folds": spec.cv_folds, "seed": spec.seed, "rows": rows,
           "libraries": dict(libraries)}
    normalised: dict[str, Any] = json.loads(json.dumps(key))
    return normalised


def as_stored(pred: np.ndarray, proba: np.ndarray | None) -> tuple[np.ndarray,
                                                                    np.ndarray | None]:
    """The predictions as they are stored: float32 (class indices are exact in it)."""
    return (np.asarray(pred, dtype=np.float32),
            None if proba is None else np.asarray(proba, dtype=np.float32))


def save(folder: Path, key: dict[str, Any], pred: np.ndarray | None,
         proba: np.ndarray | None) -> dict[str, Any] | None:
    """Writes `oof.npz`; returns the manifest's record of it, or None without predictions."""
    if pred is None:
        return None
    pred32, proba32 = as_stored(pred, proba)
    arrays = {"pred": pred32} if proba32 is None else {"pred": pred32, "proba": proba32}
    np.savez_compressed(folder / OOF_FILE, allow_pickle=False, **arrays)
    return {"file": OOF_FILE, "key": key}


def reusable(folder: Path, manifest: Manifest, key: dict[str, Any]
             ) -> tuple[tuple[np.ndarray, np.ndarray | None] | None, str]:
    """The champion's stored predictions if they were made in these very folds, else None
    and why not (for the gate's record)."""
    record = manifest.oof
    if not record or not (folder / OOF_FILE).exists():
        return None, "it stored no out-of-fold predictions"
    if (manifest.calibration or {}).get("method", "none") != "none":
        return None, "it is calibrated"
    stored = record.get("key") or {}
    differs = [name for name in key if stored.get(name) != key[name]]
    if differs:
        return None, f"its folds differ: {', '.join(differs)}"
    with np.load(folder / OOF_FILE, allow_pickle=False) as arrays:
        pred = arrays["pred"]
        proba = arrays["proba"] if "proba" in arrays.files else None
    return (pred, proba), ""
