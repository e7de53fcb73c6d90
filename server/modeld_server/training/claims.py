"""Train request ids claimed in the registry, so that replicas sharing it honour them too.

    <root>/<model>/.requests/<sha256 of the request id>.json

holds the job that took the request id: its record as the daemon running it last saved
it (queued, running, then its outcome). A claim is made and updated under the model's
lock, so of two daemons given the same request id, the first to take the lock queues
the job and the other answers with that job, as one daemon answers a retry. The files
are small and kept: a request id stays taken for as long as the registry holds it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import structlog

from modeld_server.registry import fsio
from modeld_server.registry.layout import ModelPaths
from modeld_server.registry.store import RegistryStore
from modeld_server.training.jobrecord import JobRecord
from modeld_server.types import TrainSpec

log = structlog.get_logger(__name__)

REQUESTS = ".requests"


class RequestClaims:
    """The request ids of one registry's models and the jobs that took them."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store

    def find(self, spec: TrainSpec) -> JobRecord | None:
        """The job that took `spec.request_id`, as last saved; None if none did."""
        paths = self._store.paths(spec.model)
        return _read(_path(paths, spec.request_id))  # written atomically: no lock to read

    def claim(self, record: JobRecord) -> JobRecord | None:
        """Records `record` as the job of its request id, unless a job has it already.

        Returns:
            None when `record` took it; otherwise the job that had, as last saved.

        Raises:
            ResourceExhausted: the registry's disk is full; FailedPrecondition: it is
                read-only or not permitted.
        """
        paths = self._store.paths(record.model)
        path = _path(paths, record.spec.request_id)
        # A disk that refuses (full, read-only) is mapped like every registry write
        # (errors.from_os_error, under fsio.file_lock and at the rpc edge).
        paths.root.mkdir(parents=True, exist_ok=True)
        with fsio.file_lock(paths.lock):
            holder = _read(path)
            if holder is not None:
                return holder
            path.parent.mkdir(exist_ok=True)
            fsio.write_atomic(path, _dump(record))
        return None

    def update(self, record: JobRecord) -> None:
        """Saves the job's new state into its claim (when the claim is its own)."""
        paths = self._store.paths(record.model)
        path = _path(paths, record.spec.request_id)
        with fsio.file_lock(paths.lock):
            holder = _read(path)
            if holder is not None and holder.id == record.id:
                fsio.write_atomic(path, _dump(record))


def _path(paths: ModelPaths, request_id: str) -> Path:
    # Hashed: a request id is any text of up to 128 characters, a file name is not.
    return paths.root / REQUESTS / f"{hashlib.sha256(request_id.encode()).hexdigest()}.json"


def _dump(record: JobRecord) -> bytes:
    return json.dumps(record.to_json(), sort_keys=True).encode()


def _read(path: Path) -> JobRecord | None:
    try:
        return JobRecord.from_json(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:  # damaged by hand: retaken
        log.warning("request_claim_unreadable", path=str(path), error=str(exc))
        return None
