"""The one place the daemon is built: every part from the Settings, each given the ones it
calls. Nothing else constructs a store, an index, the job runner or the service, so a test
can build a ModelService from fakes (ServiceParts) and the order of start-up lives in one
file (daemon.py runs it)."""

from __future__ import annotations

import socket

from modeld_server import fastpaths
from modeld_server.config import Settings
from modeld_server.daemon import Daemon
from modeld_server.drift import DriftHooks
from modeld_server.freshness import Freshness
from modeld_server.jobhooks import JobHooks
from modeld_server.lifecycle import Lifecycle
from modeld_server.monitoring.monitor import DriftMonitor
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.meta import ModelMeta
from modeld_server.registry.store import RegistryStore
from modeld_server.rpc.server import build_server
from modeld_server.service import ModelService, ServiceParts
from modeld_server.serving.manager import ServingManager
from modeld_server.serving.watcher import RegistryWatcher
from modeld_server.training.cluster import DaskCluster
from modeld_server.training.jobs import JobLimits, JobManager
from modeld_server.training.scheduler import Scheduler
from modeld_server.types import TrainSpec


def build_daemon(settings: Settings) -> Daemon:
    """The whole daemon, built and bound (port 0 picks a free port), not yet started."""
    return Daemon(settings, build_server(settings, build_service(settings)))


def build_service(settings: Settings) -> ModelService:
    """The core with its real parts (no gRPC): what the daemon serves."""
    return ModelService(settings, build_parts(settings))


def build_parts(settings: Settings) -> ServiceParts:
    """Every part of the core, wired to the others through callbacks (none imports the
    service). The callbacks that point forward (lifecycle -> monitor, jobs -> scheduler)
    read names bound further down, before any of them can run."""
    fastpaths.set_enabled(settings.fast_paths)  # process-wide: one daemon per process
    store = RegistryStore(settings.registry)
    index = RegistryIndex(store)
    serving = ServingManager(index, keep_loaded=settings.keep_loaded)
    meta = ModelMeta(store)
    dask = DaskCluster(settings.dask_scheduler, settings.dask_local,
                       local_log=settings.state_dir / "dask-local.log")
    lifecycle = Lifecycle(
        store, index, serving, meta, index.known,
        policy_set=lambda model, policy: monitor.set_rate(model, policy.monitor_sample))
    hooks = JobHooks(store, index, serving, meta, lifecycle, dask, settings.keep_versions)
    settings.data_root.mkdir(parents=True, exist_ok=True)
    jobs = JobManager(
        store, settings.data_root, settings.state_dir,
        max_concurrent=settings.max_concurrent_jobs, max_queued=settings.max_queued_jobs,
        limits=JobLimits(timeout=settings.train_timeout, memory_mb=settings.train_memory_mb,
                         max_rows=settings.max_dataset_rows, cpus=settings.job_cpus,
                         max_bytes=settings.max_dataset_bytes),
        on_published=hooks.published, context_for=hooks.context, training=settings.training)
    scheduler = Scheduler(
        meta, settings.data_root, submit=lambda train: jobs.submit(TrainSpec.from_json(train)).id,
        busy=jobs.has_active, max_bytes=settings.max_dataset_bytes)
    drift = DriftHooks(meta, lifecycle.get_policy,
                       on_drift=lambda model, why: scheduler.on_drift(model, why))
    monitor = DriftMonitor(
        rate=settings.monitor_sample, window=settings.monitor_window,
        capacity=settings.monitor_buffer, replica=settings.replica or socket.gethostname(),
        thresholds_for=drift.thresholds, on_alert=drift.alert,
        interval=settings.monitor_interval,
        rate_for=lambda model: lifecycle.get_policy(model, must_exist=False).monitor_sample,
        window_seconds=settings.monitor_window_seconds)
    watcher = RegistryWatcher(serving, settings.registry, watch=settings.watch,
                              poll_interval=settings.poll_interval,
                              sweep=store.clean_stale_staging)
    return ServiceParts(store=store, index=index, serving=serving, meta=meta, dask=dask,
                        lifecycle=lifecycle, freshness=Freshness(settings.data_root), jobs=jobs,
                        scheduler=scheduler, monitor=monitor, watcher=watcher)
