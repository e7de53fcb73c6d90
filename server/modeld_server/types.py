"""Plain value types shared by the core and the rpc edge (no gRPC, no heavy imports)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeld_server.registry.manifest import VersionSummary


class Task(enum.StrEnum):
    """The kind of problem a model solves (as stored in manifests)."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    ANOMALY_DETECTION = "anomaly_detection"


class JobState(enum.StrEnum):
    """A training job's lifecycle state."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class LoadState(enum.StrEnum):
    """How a model stands in this daemon's memory."""

    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    NO_ACTIVE_VERSION = "no_active_version"
    STALE = "stale"
    DEGRADED = "degraded"
    """Loaded and answering, but its files on disk are missing or damaged."""


@dataclass(frozen=True, kw_only=True)
class DaemonInfo:
    build_version: str
    started_at: float
    uptime_seconds: float
    registry_root: str
    data_root: str
    jobs_running: int
    jobs_queued: int


def encode_anew(model: str, summary: VersionSummary, build: Callable[[], bytes]) -> bytes:
    """A VersionPage's `encoded` that keeps nothing: builds the bytes each time."""
    return build()


@dataclass(frozen=True)
class VersionPage:
    """A page of ListVersions, with what its messages need besides the summaries."""

    versions: list[VersionSummary]
    next_token: str
    active: int
    aliases: Mapping[str, int] = field(default_factory=dict, kw_only=True)
    encoded: Callable[[str, VersionSummary, Callable[[], bytes]], bytes] = field(
        default=encode_anew, kw_only=True)
    """A version's message bytes (less state and aliases), kept where versions are known:
    RegistryIndex.encoded builds them once per version with `build`."""


@dataclass(frozen=True, kw_only=True)
class TrainInput:
    """Train's fields as they came in, before validation."""

    model: str
    dataset: DatasetSpec
    algorithm: str
    params: Mapping[str, str]
    cv_folds: int = 0
    seed: int | None = None
    request_id: str = ""
    task: Task | None = None
    activate: bool = True
    validation: Mapping[str, Any] = field(default_factory=dict)
    calibration: str = "none"
    engine: str = ""
    """local, dask, or empty (local)."""


@dataclass(frozen=True)
class RollbackResult:
    """What Rollback and Promote did: the model's active version before and after."""

    model: str
    previous: int
    active: int


@dataclass(frozen=True)
class MetricSummary:
    """One metric over the cross-validation folds."""

    mean: float
    std: float
    folds: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "folds": list(self.folds)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricSummary:
        return cls(float(data["mean"]), float(data["std"]), tuple(data.get("folds", ())))


@dataclass(frozen=True)
class DatasetSpec:
    """Where training data comes from (path relative to the data root), and which part of it."""

    path: str
    target: str = ""
    eval_label: str = ""
    features: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    filters: tuple[dict[str, Any], ...] = ()
    """Each {"column": c, and one of "range": {"min", "max"}, "values": [...],
    "dates": {"start", "end"}}."""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target, "eval_label": self.eval_label,
                "features": list(self.features), "drop_columns": list(self.drop_columns),
                "filters": [dict(f) for f in self.filters]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetSpec:
        return cls(data["path"], data.get("target", ""), data.get("eval_label", ""),
                   tuple(data.get("features", ())), tuple(data.get("drop_columns", ())),
                   tuple(data.get("filters", ())))


@dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """A validated training request, as the job runner and the worker see it."""

    model: str
    dataset: DatasetSpec
    algorithm: str
    task: Task
    params: dict[str, str] = field(default_factory=dict)
    cv_folds: int = 5
    seed: int = 42
    request_id: str = ""
    activate: bool = True
    validation: dict[str, Any] = field(default_factory=dict)
    """ValidationOptions fields that differ from the defaults."""
    calibration: str = "none"
    """none, sigmoid, isotonic or auto."""
    task_sampled: bool = False
    """The task was inferred from the first rows only (a large file): the worker checks the
    whole target column agrees."""
    engine: str = "local"
    """Where it trains: local (the worker process) or dask (the configured cluster)."""

    def to_json(self) -> dict[str, Any]:
        sampled = {"task_sampled": True} if self.task_sampled else {}
        # Only when not local, so the records of local jobs stay as they were.
        engine = {"engine": self.engine} if self.engine != "local" else {}
        return sampled | engine | {
            "model": self.model,
            "dataset": self.dataset.to_json(),
            "validation": dict(self.validation),
            "calibration": self.calibration,
            "algorithm": self.algorithm,
            "task": self.task.value,
            "params": dict(self.params),
            "cv_folds": self.cv_folds,
            "seed": self.seed,
            "request_id": self.request_id,
            "activate": self.activate,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSpec:
        return cls(
            model=data["model"],
            dataset=DatasetSpec.from_json(data["dataset"]),
            algorithm=data["algorithm"],
            task=Task(data["task"]),
            params=dict(data.get("params", {})),
            cv_folds=int(data["cv_folds"]),
            seed=int(data["seed"]),
            request_id=data.get("request_id", ""),
            activate=bool(data.get("activate", True)),
            validation=dict(data.get("validation", {})),
            calibration=data.get("calibration", "none"),
            task_sampled=bool(data.get("task_sampled", False)),
            engine=data.get("engine", "local"),
        )
