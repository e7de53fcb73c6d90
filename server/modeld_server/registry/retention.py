"""Keeping the registry bounded: old versions go, the ones that matter never do."""

from __future__ import annotations

import os
import shutil
import uuid

import structlog

from modeld_server.registry import fsio
from modeld_server.registry.store import RegistryStore

log = structlog.get_logger(__name__)


def doomed(versions: list[int], keep: int, protected: set[int]) -> list[int]:
    """Versions to delete: all but the newest `keep` and the protected ones."""
    newest = set(versions[-keep:]) if keep > 0 else set()
    return [v for v in versions if v not in newest and v not in protected]


def enforce(store: RegistryStore, model: str, keep: int, loaded: set[int],
            aliased: set[int]) -> list[int]:
    """Deletes versions beyond the newest `keep`, sparing the active, the previously active,
    aliased and loaded ones; each deletion is atomic (a rename out of versions/) and logged.

    Returns:
        The deleted version numbers.
    """
    paths = store.paths(model)
    deleted: list[int] = []
    with fsio.file_lock(paths.lock):
        active = store.read_active(model)
        protected = {active, store.previous_active(model, active)} | loaded | aliased
        for version in doomed(store.version_numbers(model), keep, protected):
            paths.staging.mkdir(parents=True, exist_ok=True)
            grave = paths.staging / f"deleted-{version}-{uuid.uuid4().hex[:8]}"
            os.rename(paths.version(version), grave)
            fsio.fsync_dir(paths.versions)
            store.append_event(model, "deleted", version=version, reason=f"retention: keep {keep}")
            shutil.rmtree(grave, ignore_errors=True)
            deleted.append(version)
    if deleted:
        log.info("versions_deleted", model=model, versions=deleted, keep=keep)
    return deleted
