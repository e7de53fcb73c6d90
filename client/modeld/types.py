"""Typed, frozen views of the daemon's replies; each keeps its message as ``.raw``.

Enums are ``StrEnum`` so they compare to and print as plain strings
("succeeded", "active"), which is also how ``to_dict()`` writes them for JSON.
Timestamps become timezone-aware UTC datetimes, or None when unset.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from modeld.v1 import model_manager_pb2 as pb

__all__ = [
    "ConfusionMatrix",
    "Job",
    "JobState",
    "LoadState",
    "Metric",
    "RollbackResult",
    "Task",
    "Version",
    "VersionState",
    "to_dict",
]


class Task(enum.StrEnum):
    """The kind of problem a model solves."""

    UNSPECIFIED = "unspecified"
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    ANOMALY_DETECTION = "anomaly_detection"


class JobState(enum.StrEnum):
    """A training job's lifecycle state."""

    UNSPECIFIED = "unspecified"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        """Whether the state is final."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class LoadState(enum.StrEnum):
    """Whether the daemon serves a model's active version."""

    UNSPECIFIED = "unspecified"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    NO_ACTIVE_VERSION = "no_active_version"
    STALE = "stale"
    DEGRADED = "degraded"


class VersionState(enum.StrEnum):
    """Whether a version is the active one."""

    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    INACTIVE = "inactive"
    REJECTED = "rejected"


E = TypeVar("E", bound=enum.StrEnum)


def enum_from_pb(cls: type[E], pb_enum: Any, prefix: str, value: int) -> E:
    """Maps a proto enum number to ours by name; numbers from a newer daemon become UNSPECIFIED."""
    try:
        return cls(pb_enum.Name(value).removeprefix(prefix).lower())
    except ValueError:
        return cls("unspecified")


def from_timestamp(ts: Any, present: bool) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when the field is unset."""
    return ts.ToDatetime(tzinfo=UTC) if present else None


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric over the cross-validation folds."""

    mean: float
    std: float
    folds: tuple[float, ...]

    @classmethod
    def from_pb(cls, m: pb.MetricValue) -> Metric:
        return cls(m.mean, m.std, tuple(m.folds))


def metrics_from_pb(values: Mapping[str, pb.MetricValue]) -> dict[str, Metric]:
    return {name: Metric.from_pb(values[name]) for name in sorted(values)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """A training job, as of the moment it was read."""

    id: str
    model: str
    state: JobState
    version: int
    phase: str
    progress: float
    message: str
    error: str
    metrics: Mapping[str, Metric]
    algorithm: str
    dataset: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    activated: bool
    raw: pb.Job = dataclasses.field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled)."""
        return self.state.done

    @classmethod
    def from_pb(cls, m: pb.Job) -> Job:
        return cls(
            id=m.id, model=m.model,
            state=enum_from_pb(JobState, pb.JobState, "JOB_STATE_", m.state),
            version=m.version, phase=m.phase, progress=m.progress, message=m.message,
            error=m.error, metrics=metrics_from_pb(m.metrics), algorithm=m.request.algorithm,
            dataset=m.request.dataset.path,
            created_at=from_timestamp(m.created_at, m.HasField("created_at")),
            started_at=from_timestamp(m.started_at, m.HasField("started_at")),
            finished_at=from_timestamp(m.finished_at, m.HasField("finished_at")),
            activated=m.activated, raw=m,
        )


@dataclasses.dataclass(frozen=True)
class ConfusionMatrix:
    """Counts summed over the folds: ``counts[i][j]`` rows of class i predicted j."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def from_pb(cls, m: pb.ConfusionMatrix) -> ConfusionMatrix:
        n = len(m.labels)
        flat = list(m.counts)
        return cls(tuple(m.labels), tuple(tuple(flat[i * n:(i + 1) * n]) for i in range(n)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Version:
    """A published, immutable version of a model."""

    model: str
    version: int
    state: VersionState
    algorithm: str
    task: Task
    params: Mapping[str, str]
    metrics: Mapping[str, Metric]
    created_at: datetime | None
    job_id: str
    dataset_path: str
    dataset_sha256: str
    rows: int
    features: tuple[str, ...]
    classes: tuple[str, ...]
    confusion_matrix: ConfusionMatrix | None
    training_seconds: float
    #: The whole manifest.json (GetVersion only; None in listings).
    manifest: Mapping[str, Any] | None
    #: Aliases pointing at this version.
    aliases: tuple[str, ...]
    #: The quality gate's decision and reasons, when a gate ran.
    gate_summary: str
    raw: pb.Version = dataclasses.field(repr=False, compare=False)

    @property
    def active(self) -> bool:
        """Whether this is the model's active version."""
        return self.state is VersionState.ACTIVE

    @classmethod
    def from_pb(cls, m: pb.Version) -> Version:
        return cls(
            model=m.model, version=m.version,
            state=enum_from_pb(VersionState, pb.VersionState, "VERSION_STATE_", m.state),
            algorithm=m.algorithm, task=enum_from_pb(Task, pb.Task, "TASK_", m.task),
            params=dict(sorted(m.params.items())), metrics=metrics_from_pb(m.metrics),
            created_at=from_timestamp(m.created_at, m.HasField("created_at")), job_id=m.job_id,
            dataset_path=m.dataset_path, dataset_sha256=m.dataset_sha256, rows=m.rows,
            features=tuple(m.features), classes=tuple(m.classes),
            confusion_matrix=(ConfusionMatrix.from_pb(m.confusion_matrix)
                              if m.confusion_matrix.labels else None),
            training_seconds=m.training_seconds,
            manifest=json.loads(m.manifest_json) if m.manifest_json else None,
            aliases=tuple(m.aliases), gate_summary=m.gate_summary, raw=m,
        )


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    """What a rollback changed: the active version before and after."""

    model: str
    previous_version: int
    active_version: int
    raw: pb.RollbackResponse = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_pb(cls, m: pb.RollbackResponse) -> RollbackResult:
        return cls(m.model, m.previous_version, m.active_version, raw=m)


def to_dict(value: Any) -> Any:
    """A JSON-ready copy of a result: dataclasses become dicts without ``raw``.

    Args:
        value: A dataclass from this module, or a container or scalar inside one.

    Returns:
        Plain dicts, lists, strings and numbers; datetimes as ISO 8601 strings.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_dict(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.name != "raw"}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    return value
