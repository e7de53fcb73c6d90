"""Plain value types shared by the core and the rpc edge (no gRPC, no heavy imports)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


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
    """Where training data comes from (path relative to the data root)."""

    path: str
    target: str = ""
    eval_label: str = ""


@dataclass(frozen=True)
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

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": {
                "path": self.dataset.path,
                "target": self.dataset.target,
                "eval_label": self.dataset.eval_label,
            },
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
            dataset=DatasetSpec(**data["dataset"]),
            algorithm=data["algorithm"],
            task=Task(data["task"]),
            params=dict(data.get("params", {})),
            cv_folds=int(data["cv_folds"]),
            seed=int(data["seed"]),
            request_id=data.get("request_id", ""),
            activate=bool(data.get("activate", True)),
        )
