"""A training job's record, and its persistence as one JSON file per job."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from modeld_server.registry.fsio import write_atomic
from modeld_server.types import JobState, TrainSpec

log = structlog.get_logger(__name__)


def new_job_id() -> str:
    """'j' + 12 hex digits of milliseconds + 8 random hex digits: sortable by creation time."""
    return f"j{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


@dataclass
class JobRecord:
    """Everything known about a job. Mutated only under the JobManager's lock."""

    id: str
    spec: TrainSpec
    state: JobState = JobState.QUEUED
    phase: str = "queued"
    progress: float = 0.0
    message: str = ""
    error: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    activated: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    seq: int = 0
    """Bumped on every change; watchers wait for it to move."""
    cancel_requested: bool = False

    @property
    def model(self) -> str:
        return self.spec.model

    def snapshot(self) -> JobRecord:
        """A copy that callers may read without the lock."""
        return JobRecord(**{**self.__dict__, "metrics": dict(self.metrics)})

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("seq", "cancel_requested")}
        data["spec"] = self.spec.to_json()
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        values = dict(data)
        values["spec"] = TrainSpec.from_json(values["spec"])
        values["state"] = JobState(values["state"])
        return cls(**values)


class JobFiles:
    """state_dir/jobs/<id>.json, rewritten atomically at every state change."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "jobs"
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, record: JobRecord) -> None:
        write_atomic(self.folder / f"{record.id}.json", json.dumps(record.to_json()).encode())

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
