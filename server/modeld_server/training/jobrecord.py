"""A training job's record, its persistence as one JSON file per job, and its recovery."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from modeld_server.errors import FailedPrecondition, ModeldError, ResourceExhausted
from modeld_server.registry.fsio import write_atomic
from modeld_server.registry.manifest import Manifest
from modeld_server.registry.store import RegistryStore
from modeld_server.types import JobState, TrainSpec

log = structlog.get_logger(__name__)


def new_job_id() -> str:
    """'j' + 12 hex digits of milliseconds + 8 random hex digits: sortable by creation time."""
    return f"j{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """Everything known about a job at one moment. Frozen: the JobManager replaces a job's
    record (under its lock) rather than changing it, so a record handed out is never torn.

    Its JSON (state_dir/jobs/<id>.json, and the request claims other daemons read) is
    read tolerantly both ways: unknown keys (a newer daemon's) are ignored and missing ones
    take their defaults. tests/fixtures/jobs/ keeps a record of each shape ever written.
    """

    id: str
    spec: TrainSpec
    state: JobState = JobState.QUEUED
    phase: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0
    activated: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    seq: int = 0
    """Bumped on every change; watchers wait for it to move. Not saved."""

    @property
    def model(self) -> str:
        return self.spec.model

    def but(self, **changes: Any) -> JobRecord:
        """A copy with `changes` applied and seq moved on."""
        return dataclasses.replace(self, seq=self.seq + 1, **changes)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in _NOT_SAVED}
        data["spec"] = self.spec.to_json()
        data["state"] = self.state.value
        data["metrics"] = dict(self.metrics)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRecord:
        """Reads a saved record; keys this daemon does not know are ignored.

        Raises:
            KeyError: no id or spec; ValueError, TypeError: a value of the wrong kind.
        """
        values = {name: data[name] for name in _SAVED if name in data}
        values["spec"] = TrainSpec.from_json(data["spec"])
        values["state"] = JobState(data.get("state", JobState.QUEUED.value))
        values["metrics"] = dict(data.get("metrics") or {})
        return cls(**values)


_NOT_SAVED = frozenset({"seq"})
_SAVED = tuple(f.name for f in dataclasses.fields(JobRecord) if f.name not in _NOT_SAVED)


class JobFiles:
    """state_dir/jobs/<id>.json, rewritten atomically at every state change."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, record: JobRecord) -> None:
        write_atomic(self.folder / f"{record.id}.json", json.dumps(record.to_json()).encode())

    def save_new(self, record: JobRecord) -> None:
        """Saves a job's first record, the condition of its existence.

        Raises:
            ResourceExhausted: the state dir is full (ENOSPC, EDQUOT).
            FailedPrecondition: it cannot be written for another reason (read-only, EACCES).
        """
        try:
            self.save(record)
        except OSError as exc:
            reason = f"{exc.strerror or exc} ({self.folder})"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ResourceExhausted(f"state dir full: {reason}; the job was not "
                                        "created") from None
            raise FailedPrecondition(f"state dir not writable: {reason}; the job was not "
                                     "created") from None

    def discard(self, record: JobRecord) -> None:
        """Removes a record saved by save_new for a job that was then refused."""
        (self.folder / f"{record.id}.json").unlink(missing_ok=True)

    def load_all(self) -> list[JobRecord]:
        """Every readable record; unreadable files are logged and skipped, never fatal."""
        records = []
        for name in os.listdir(self.folder):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                records.append(JobRecord.from_json(json.loads((self.folder / name).read_bytes())))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("job_record_unreadable", file=name, error=str(exc))
        return records


def recover_published(record: JobRecord, store: RegistryStore) -> JobRecord | None:
    """The record of an interrupted job marked SUCCEEDED, when a version's manifest names it.

    The daemon can die after publish renamed the version into place and before the
    record said so: the version is complete (and maybe active), so the job did not fail.

    Returns:
        The SUCCEEDED record; None when the job published no version.
    """
    try:
        found = _published_by(record, store)
    except ModeldError:  # a record naming no valid model published nothing
        return None
    if found is None:
        return None
    version, manifest = found
    activated = _activated(record, store, version)
    message = f"published version {version} (recorded at restart)"
    if manifest.rejected:
        message += " as REJECTED by the quality gate"
    elif record.spec.activate and not activated:
        message += "; not activated: the daemon stopped before it could"
    log.warning("job_recovered_as_published", job_id=record.id, model=record.model,
                version=version, activated=activated)
    return record.but(state=JobState.SUCCEEDED, phase="done", progress=1.0, version=version,
                      activated=activated, error="", metrics=dict(manifest.metrics),
                      message=message)


def _published_by(record: JobRecord, store: RegistryStore) -> tuple[int, Manifest] | None:
    """(version, manifest) of the version the job published, searched newest first."""
    if record.started_at is None:
        return None  # never ran: cannot have published
    for version in reversed(store.version_numbers(record.model)):
        try:
            manifest = store.read_manifest(record.model, version)
        except ModeldError:
            continue  # a broken version is the index's problem, not this job's
        if manifest.job_id == record.id:
            return version, manifest
    return None


def _activated(record: JobRecord, store: RegistryStore, version: int) -> bool:
    """Whether publish moved ACTIVE to `version`: its event, or the pointer when the daemon
    died between writing the pointer and logging the event."""
    if any(e.get("event") == "activated" and e.get("version") == version
           and e.get("job_id") == record.id for e in store.read_events(record.model)):
        return True
    try:
        return store.read_active(record.model) == version
    except ModeldError:
        return False
