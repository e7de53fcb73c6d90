"""The one facade the rpc layer calls. Validates requests and ties the parts together.

Nothing here knows gRPC: requests come in as plain values, answers go out as
domain objects, and failures are domain errors (errors.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from modeld_server.config import Settings
from modeld_server.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    quoted,
    training_off,
)
from modeld_server.features import FeatureSchema
from modeld_server.freshness import Freshness, StatusWarning
from modeld_server.lifecycle import Lifecycle
from modeld_server.monitoring.monitor import DriftMonitor
from modeld_server.pages import page_size_of, version_page
from modeld_server.predicting import Predictor
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.manifest import VersionSummary
from modeld_server.registry.meta import ModelMeta
from modeld_server.registry.store import RegistryStore
from modeld_server.serving.loaded import Prediction
from modeld_server.serving.manager import ModelView, ServingManager
from modeld_server.serving.watcher import RegistryWatcher
from modeld_server.training.cluster import DaskCluster
from modeld_server.training.gate import Policy
from modeld_server.training.jobrecord import JobRecord
from modeld_server.training.jobs import JobManager
from modeld_server.training.scheduler import Scheduler, ScheduleSpec, ScheduleState
from modeld_server.trainrequest import schedule_of, validate_train
from modeld_server.types import (
    DaemonInfo,
    RollbackResult,
    TrainInput,
    TrainSpec,
    VersionPage,
)
from modeld_server.views import (
    AliasView,
    DriftView,
    ModelStatus,
    RepositoryModel,
    Rows,
    VersionDetail,
)

log = structlog.get_logger(__name__)

BUILD_VERSION = "0.1.0"


@dataclass(frozen=True, kw_only=True)
class ServiceParts:
    """What ModelService calls, built by compose.build_parts (or by a test, from fakes)."""

    store: RegistryStore
    index: RegistryIndex
    serving: ServingManager
    meta: ModelMeta
    dask: DaskCluster
    lifecycle: Lifecycle
    freshness: Freshness
    jobs: JobManager
    scheduler: Scheduler
    monitor: DriftMonitor
    watcher: RegistryWatcher


class ModelService:
    """Everything the daemon does, behind one object."""

    def __init__(self, settings: Settings, parts: ServiceParts) -> None:
        self.settings = settings
        self.started_at = time.time()
        # Absolute once: GetStatus reports them on every call, and resolving walks the path.
        self._roots = (str(settings.registry.resolve()), str(settings.data_root.resolve()))
        self.store = parts.store
        self.index = parts.index
        self.serving = parts.serving
        self.meta = parts.meta
        self.dask = parts.dask
        self.lifecycle = parts.lifecycle
        self.freshness = parts.freshness
        self.jobs = parts.jobs
        self.scheduler = parts.scheduler
        self.monitor = parts.monitor
        self.watcher = parts.watcher
        self.predictor = Predictor(serving=self.serving, lifecycle=self.lifecycle,
                                   monitor=self.monitor, max_rows=settings.max_predict_rows)

    def warm_up(self) -> None:
        """Imports what validating a Train needs and starts the training forkserver.

        Run in the background once the daemon reports SERVING (never on a serve-only
        daemon): the first Train then answers in milliseconds instead of paying for the
        imports, and no Predict waits for them during start-up.
        """
        import importlib

        if not self.settings.training:
            return
        for module in ("pandas", "sklearn.ensemble", "sklearn.linear_model", "xgboost"):
            importlib.import_module(module)
        self.jobs.warm_up()

    def start(self, *, background: bool = True) -> None:
        """Cleans stale staging folders and loads every model's active version; then, with
        `background`, follows the registry (watcher), runs the schedules (unless
        --no-training: a serve-only daemon runs none) and drift monitoring."""
        self.store.clean_stale_staging()
        self.serving.poll_once(None, force=True)
        if not background:
            return
        self.watcher.start()
        if self.settings.training:
            self.scheduler.start()
        self.monitor.start()

    # ---- training -------------------------------------------------------------------------

    def train(self, request: TrainInput, wanted: Callable[[], bool] = lambda: True) -> JobRecord:
        """Validates a training request synchronously and queues it.

        Args:
            wanted: whether the caller still waits for the answer (the RPC's deadline has
                not passed); asked after validation, so a call that ran out of time while
                validating queues no job the client would never hear of.

        Raises:
            DeadlineExceeded: the caller stopped waiting before the job was queued.
            FailedPrecondition: this daemon does not train (--no-training).
        """
        if not self.settings.training:
            raise training_off("Train")
        spec = self.validate_train(request)
        if not wanted():
            raise DeadlineExceeded("Train's deadline passed (or the call was cancelled) "
                                   "before the job was queued: no job was queued")
        return self.jobs.submit(spec)

    def validate_train(self, request: TrainInput) -> TrainSpec:
        """Every check Train makes before queueing; returns the job's spec."""
        return validate_train(request, settings=self.settings, dask=self.dask,
                              lifecycle=self.lifecycle)

    def get_job(self, job_id: str) -> JobRecord:
        return self.jobs.get(_require(job_id, "job_id"))

    def watch_job(self, job_id: str) -> Iterator[JobRecord]:
        self.jobs.get(_require(job_id, "job_id"))  # NOT_FOUND before the stream starts
        return self.jobs.watch(job_id)

    def cancel_job(self, job_id: str) -> JobRecord:
        return self.jobs.cancel(_require(job_id, "job_id"))

    def list_jobs(self, model: str, page_size: int, token: str) -> tuple[list[JobRecord], str]:
        if model:
            validate_model_name(model)
        size = page_size_of(page_size)
        jobs = self.jobs.list(model, size + 1, after=token)
        next_token = jobs[size - 1].id if len(jobs) > size else ""
        return jobs[:size], next_token

    # ---- registry -------------------------------------------------------------------------

    def status(self, model: str = "") -> tuple[DaemonInfo, list[ModelStatus]]:
        """The daemon, and each model (or just `model`) as GetStatus reports it."""
        running, queued = self.jobs.counts()
        now = time.time()
        registry_root, data_root = self._roots
        info = DaemonInfo(build_version=BUILD_VERSION, started_at=self.started_at,
                          uptime_seconds=now - self.started_at, registry_root=registry_root,
                          data_root=data_root, jobs_running=running, jobs_queued=queued)
        return info, [self._model_status(view) for view in self.views(model)]

    def views(self, model: str = "") -> list[ModelView]:
        """How each model (or just `model`) stands in memory: cheaper than status()."""
        names = [self._known(model)] if model else self.index.models()
        return [self.serving.view(name) for name in names]

    def model_status(self, model: str) -> ModelStatus:
        """One model as GetStatus reports it."""
        return self._model_status(self.serving.view(self._known(model)))

    def _model_status(self, view: ModelView) -> ModelStatus:
        entry = self.index.entry(view.model)
        summary = entry.summaries.get(view.active)
        return ModelStatus(view=view, summary=summary, versions=entry.versions,
                           aliases=self.lifecycle.aliases(view.model),
                           schedule=self._schedule_of(view.model),
                           warnings=self._warnings_of(view.model, summary),
                           drift=self.monitor.status(view.model, view.loaded)
                           if view.loaded else "")

    def repository(self) -> list[RepositoryModel]:
        """Every model's versions with what V2's repository index reports of each."""
        out = []
        for view in self.views():
            entry = self.index.entry(view.model)
            out.append(RepositoryModel(view=view, versions=entry.versions,
                                       summaries=entry.summaries,
                                       answering=frozenset(self.serving.answering(view.model)),
                                       aliases=self.lifecycle.aliases(view.model)))
        return out

    def list_versions(self, model: str, page_size: int, token: str,
                      state: str = "") -> VersionPage:
        entry = self.index.entry(self._known(model))
        versions, next_token = version_page(self.index, model, entry, page_size, token, state)
        return VersionPage(versions, next_token, entry.active,
                           aliases=self.lifecycle.aliases(model), encoded=self.index.encoded)

    def get_version(self, model: str, version: int) -> VersionDetail:
        """The full manifest of a version (0: the active one), the active version number
        and the model's aliases."""
        entry = self.index.entry(self._known(model))
        number = version or entry.active
        if number < 0:
            raise InvalidArgument(f"version must be >= 0, got {version}")
        if number == 0:
            raise NotFound(f"model {model!r} has no active version")
        return VersionDetail(self.store.read_manifest(model, number), entry.active,
                             self.lifecycle.aliases(model))

    def rollback(self, model: str, to_version: int, reason: str,
                 expected_active: int = 0, dry_run: bool = False) -> RollbackResult:
        """Points the model at an earlier version and returns once this daemon serves it.
        With dry_run, checks the same and answers what it would do, changing nothing."""
        self._known(model)
        if to_version < 0 or expected_active < 0:
            raise InvalidArgument("to_version and expected_active_version must be >= 0")
        current = self.store.read_active(model)
        target = to_version or self.store.previous_active(model, current)
        if not target:
            raise FailedPrecondition(f"model {model!r} has no previously active version")
        if target == current:
            raise FailedPrecondition(f"version {target} of model {model!r} is already active")
        self.store.read_manifest(model, target)  # NOT_FOUND for a version that does not exist
        if dry_run:
            return RollbackResult(model, current, target)
        return self.lifecycle.activate(model, target, event="rolled_back", reason=reason,
                                       expected_active=expected_active or current)

    def reload(self, model: str = "") -> list[ModelStatus]:
        names = [self._known(model)] if model else None
        self.serving.poll_once(names, force=True)
        return self.status(model)[1]

    # ---- lifecycle (Lifecycle does the work) ----------------------------------------------

    def promote(self, model: str, version: int, reason: str,
                expected_active: int = 0) -> RollbackResult:
        return self.lifecycle.promote(model, version, reason, expected_active)

    def get_policy(self, model: str) -> Policy:
        return self.lifecycle.get_policy(model)

    def set_policy(self, model: str, policy: Policy) -> Policy:
        return self.lifecycle.set_policy(model, policy)

    def set_alias(self, model: str, alias: str, version: int,
                  expected: int | None) -> AliasView:
        return AliasView(model, alias, self.lifecycle.set_alias(model, alias, version, expected))

    def delete_alias(self, model: str, alias: str, expected: int | None) -> AliasView:
        self.lifecycle.delete_alias(model, alias, expected)
        return AliasView(model, alias, 0)

    # ---- serving --------------------------------------------------------------------------

    def predict(self, model: str, version: int, alias: str, rows: Rows, *,
                ignore_extra_columns: bool = False, explain: bool = False
                ) -> tuple[int, Prediction]:
        """Predicts `rows` with the version asked for (pinned, by alias, or 0: the active
        one); returns the version that answered and its prediction (predicting.py)."""
        return self.predictor.predict(model, version, alias, rows,
                                      ignore_extra_columns=ignore_extra_columns,
                                      explain=explain)

    def pick_version(self, model: str, version: int, alias: str) -> int:
        """The version a Predict addresses: pinned, by alias, or 0 for the active one."""
        return self.predictor.pick_version(model, version, alias)

    def answering(self, model: str) -> list[int]:
        """Versions of `model` loaded here, that answer without a load first; ascending."""
        return self.serving.answering(model)

    def feature_schema(self, model: str, version: int) -> FeatureSchema:
        """The feature columns of the version (0: the active one), loading it if need be."""
        return self.serving.get(model, version).schema

    def predict_records(self, model: str, version: int, rows: Sequence[Mapping[str, Any]],
                        ignore_extra_columns: bool = False, *, explain: bool = False
                        ) -> tuple[int, Prediction]:
        return self.predictor.predict_records(model, version, rows, ignore_extra_columns,
                                              explain=explain)

    def predict_dense(self, model: str, version: int, columns: Sequence[str],
                      values: Sequence[float] | np.ndarray,
                      ignore_extra_columns: bool = False, *, explain: bool = False
                      ) -> tuple[int, Prediction]:
        return self.predictor.predict_dense(model, version, columns, values,
                                            ignore_extra_columns, explain=explain)

    def _known(self, model: str) -> str:
        return self.index.known(model)

    def gauges(self) -> dict[str, Any]:
        """Numbers Prometheus scrapes: versions per model, job counts."""
        running, queued = self.jobs.counts()
        models = {}
        for name in self.index.models():
            view = self.serving.view(name)
            models[name] = (view.active, view.loaded)
        # The last window of the version serving now: a new version's gauges start empty.
        drift = {m: r for m, r in self.monitor.latest().items()
                 if m in models and r.version == models[m][1]}
        return {"models": models, "running": running, "queued": queued, "drift": drift}

    # ---- schedules ------------------------------------------------------------------------

    def set_schedule(self, model: str, request: TrainInput, cron: str, interval: float,
                     min_new_rows: int, min_interval: float, *, on_drift: bool = False
                     ) -> tuple[ScheduleSpec, ScheduleState]:
        """Validates the schedule's training request as Train would, then stores the schedule.

        A serve-only daemon refuses: it runs no schedules, so one set through it would
        wait for another replica, unseen by the caller."""
        if not self.settings.training:
            raise training_off("SetSchedule")
        validate_model_name(model)
        if request.model != model:
            raise InvalidArgument(f"schedule.train.model {quoted(request.model)} differs "
                                  f"from schedule.model {model!r}")
        schedule = schedule_of(self.validate_train(request), cron=cron, interval=interval,
                               min_new_rows=min_new_rows, min_interval=min_interval,
                               on_drift=on_drift)
        return schedule, self.scheduler.set(schedule)

    def get_schedule(self, model: str) -> tuple[ScheduleSpec, ScheduleState]:
        return self.scheduler.get(validate_model_name(model))

    def delete_schedule(self, model: str) -> ScheduleSpec:
        return self.scheduler.delete(validate_model_name(model))

    def _warnings_of(self, model: str, summary: VersionSummary | None) -> list[StatusWarning]:
        """Freshness warnings about the active version (`summary`, the index's), for
        GetStatus: cheap, the dataset's hash comes from a background thread."""
        return self.freshness.warnings(self.lifecycle.get_policy(model, must_exist=False),
                                       summary)

    # ---- drift ----------------------------------------------------------------------------

    def get_drift(self, model: str) -> DriftView:
        """This replica's drift of the model's serving version, and its sampling rate.

        Raises:
            NotFound: the model, or no version of it is loaded.
        """
        view = self.serving.view(self._known(model))
        if not view.loaded:
            raise NotFound(f"model {model!r} has no loaded version to monitor")
        return DriftView(self.monitor.report(model, view.loaded), self.monitor.rate_of(model))

    def _schedule_of(self, model: str) -> tuple[ScheduleSpec, ScheduleState] | None:
        """The model's schedule for GetStatus, or None."""
        try:
            return self.scheduler.get(model)
        except NotFound:
            return None

    def close(self, wait: float | None = None) -> None:
        """Stops the scheduler, the jobs and the watcher; waits up to `wait` seconds
        (default: the job manager's own) for job runners to remove their staging folders."""
        self.monitor.stop()
        self.freshness.close()
        self.scheduler.stop()
        if wait is None:
            self.jobs.close()
        else:
            self.jobs.close(wait=wait)
        self.dask.close()  # after the jobs: none still uses it
        self.watcher.stop()


def _require(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required")
    return value
