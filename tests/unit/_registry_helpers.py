"""Shared builders for the registry unit tests: fake versions made without training anything.

The worker at the bottom runs in spawned processes, so it lives in an importable module
rather than in a test file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from modeld_server.registry.store import RegistryStore

FAKE_MANIFEST: dict[str, Any] = {"algorithm": "x", "task": "classification"}


def count_sha256_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files fsio.sha256_file reads from now on, in order (it still hashes them)."""
    from modeld_server.registry import fsio

    calls: list[Path] = []
    real = fsio.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(fsio, "sha256_file", counting)
    return calls


def skip_disk_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turns os.fsync into a check that the fd is open, for the rest of the test.

    What these tests assert (what readers can see, and when) comes from rename and
    O_APPEND, not from fsync; fsync only matters across a power cut, which a unit test
    cannot make. On a busy disk each fsync costs milliseconds, hence the stand-in.
    """
    monkeypatch.setattr(os, "fsync", os.fstat)


def publish_fake(
    store: RegistryStore,
    model: str = "m",
    payload: bytes = b"weights",
    *,
    activate: bool = True,
    **fields: Any,
) -> int:
    """Publishes a version holding one artifact, model.bin; returns its number."""
    staging = store.begin_staging(model)
    (staging.path / "model.bin").write_bytes(payload)
    return store.publish(staging, {**FAKE_MANIFEST, **fields}, activate=activate).version


def event_names(store: RegistryStore, model: str = "m") -> list[str]:
    """The `event` field of every logged event, oldest first."""
    return [str(event["event"]) for event in store.read_events(model)]


def manifest_on_disk(store: RegistryStore, model: str, version: int) -> dict[str, Any]:
    """The manifest file parsed directly, bypassing read_manifest's checks."""
    parsed: dict[str, Any] = json.loads(store.paths(model).manifest(version).read_text())
    return parsed


def publish_many(root: str, model: str, count: int, start: Any, results: Any) -> None:
    """Process entry point: waits on `start`, publishes `count` versions, reports their numbers.

    Args:
        root: the registry root, as a string so it pickles cheaply.
        model: the model every version goes to.
        count: how many versions to publish.
        start: a multiprocessing Barrier, so the competing processes begin together.
        results: a multiprocessing Queue that receives the list of numbers this process got.
    """
    store = RegistryStore(Path(root))
    start.wait()
    numbers = [publish_fake(store, model, f"payload-{i}".encode(), activate=i % 2 == 0)
               for i in range(count)]
    results.put(numbers)
