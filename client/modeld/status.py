"""What the daemon serves: its own status and each model's."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from modeld.types import LoadState, Metric, Task, enum_from_pb, from_timestamp, metrics_from_pb
from modeld.v1 import model_manager_pb2 as pb

if TYPE_CHECKING:
    from modeld.lifecycle import Schedule

__all__ = ["DaemonStatus", "ModelStatus", "Status", "StatusWarning"]


@dataclasses.dataclass(frozen=True)
class StatusWarning:
    """Something about the active version worth a look (it still serves).

    ``kind`` is "max_age", "min_training_rows" or "dataset_changed" (see Policy).
    """

    kind: str
    message: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelStatus:
    """One model as the daemon sees it: what is active on disk and what answers."""

    model: str
    active_version: int
    loaded_version: int
    state: LoadState
    last_error: str
    metrics: Mapping[str, Metric]
    latest_version: int
    version_count: int
    algorithm: str
    task: Task
    last_reload_at: datetime | None
    last_reload_ms: float
    #: Aliases of this model: alias -> version.
    aliases: Mapping[str, int]
    #: The retraining schedule, when one is set.
    schedule: Schedule | None
    raw: pb.ModelStatus = dataclasses.field(repr=False, compare=False)
    #: Freshness warnings about the active version, from its policy.
    warnings: tuple[StatusWarning, ...] = ()
    #: This daemon's drift status of the serving version (see Client.get_drift).
    drift_status: str = ""

    @classmethod
    def from_pb(cls, m: pb.ModelStatus) -> ModelStatus:
        return cls(
            model=m.model, active_version=m.active_version, loaded_version=m.loaded_version,
            state=enum_from_pb(LoadState, pb.LoadState, "LOAD_STATE_", m.state),
            last_error=m.last_error, metrics=metrics_from_pb(m.metrics),
            latest_version=m.latest_version, version_count=m.version_count,
            algorithm=m.algorithm, task=enum_from_pb(Task, pb.Task, "TASK_", m.task),
            last_reload_at=from_timestamp(m.last_reload_at, m.HasField("last_reload_at")),
            last_reload_ms=m.last_reload_ms, aliases=dict(sorted(m.aliases.items())),
            schedule=_schedule(m), raw=m,
            warnings=tuple(StatusWarning(w.kind, w.message) for w in m.warnings),
            drift_status=m.drift_status,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class DaemonStatus:
    """The daemon itself."""

    build_version: str
    uptime_seconds: float
    registry_root: str
    data_root: str
    jobs_running: int
    jobs_queued: int
    started_at: datetime | None
    raw: pb.DaemonStatus = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_pb(cls, m: pb.DaemonStatus) -> DaemonStatus:
        return cls(build_version=m.build_version, uptime_seconds=m.uptime_seconds,
                   registry_root=m.registry_root, data_root=m.data_root,
                   jobs_running=m.jobs_running, jobs_queued=m.jobs_queued,
                   started_at=from_timestamp(m.started_at, m.HasField("started_at")), raw=m)


@dataclasses.dataclass(frozen=True)
class Status:
    """The daemon and its models (or the one asked for), sorted by name."""

    daemon: DaemonStatus
    models: tuple[ModelStatus, ...]
    raw: pb.GetStatusResponse = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_pb(cls, m: pb.GetStatusResponse) -> Status:
        return cls(DaemonStatus.from_pb(m.daemon),
                   tuple(ModelStatus.from_pb(s) for s in m.models), raw=m)


def _schedule(m: pb.ModelStatus) -> Schedule | None:
    # Imported here: lifecycle builds on types, and status is imported by types' users.
    from modeld.lifecycle import Schedule

    return Schedule.from_pb(m.schedule) if m.HasField("schedule") else None
