"""Where TrainRequest.engine=dask jobs train: a scheduler address, or a LocalCluster.

The daemon never imports dask or distributed unless --dask-local asks it to start a
cluster, and then only on the first engine=dask job (importing them and starting two
worker processes takes seconds; a daemon that never trains on Dask pays nothing). With
--dask-scheduler the daemon only passes the address on: the training worker connects.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from modeld_server.errors import FailedPrecondition, quoted
from modeld_server.types import TrainInput

log = structlog.get_logger(__name__)

ENGINES = ("local", "dask", "auto")
NO_CLUSTER = ("engine dask needs a Dask cluster: start the daemon with --dask-scheduler "
              "ADDRESS or --dask-local N")


DISTRIBUTED = ("xgboost",)
"""Algorithms whose one fit spreads over the cluster (xgboost.dask)."""
ONE_WORKER = ("hist_gradient_boosting", "isolation_forest", "logistic_regression",
              "random_forest", "ridge")
"""Algorithms whose folds and final fit are Dask tasks, each on one worker: the dataset
must fit one worker's memory (dask_sklearn.py)."""


def check_dask_request(request: TrainInput) -> None:
    """Refuses what engine=dask does not do in this version.

    Raises:
        FailedPrecondition: an algorithm it does not train (naming those it trains), or
            an option its path does not take.
    """
    if request.algorithm not in DISTRIBUTED + ONE_WORKER:
        raise FailedPrecondition(
            f"engine dask does not train algorithm {quoted(request.algorithm)} in this "
            f"version: it trains {', '.join(DISTRIBUTED)} distributed, and "
            f"{', '.join(ONE_WORKER)} with each fit a task on one worker")
    # The scikit-learn path prepares the data as the local engine does, on a worker;
    # XGBoost's validates with Dask reductions (dask_validation.py).
    if request.calibration != "none":
        raise FailedPrecondition(f"engine dask does not take calibration with algorithm "
                                 f"{quoted(request.algorithm)} in this version")


def auto_engine(request: TrainInput, size: int, above: int, configured: bool) -> str:
    """Where an engine=auto job trains: "dask" when the model's policy sets a threshold
    (`above` bytes, 0: none), the dataset's files hold more than it (`size`), the daemon
    has a cluster, and the request is one engine dask takes; "local" otherwise."""
    if not (above and size > above and configured):
        return "local"
    try:
        check_dask_request(request)
    except FailedPrecondition:
        return "local"
    return "dask"


class DaskCluster:
    """The scheduler address engine=dask jobs connect to, resolved on first use."""

    def __init__(self, scheduler: str = "", local_workers: int = 0) -> None:
        self._scheduler = scheduler
        self._local_workers = local_workers
        self._local: Any = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def configured(self) -> bool:
        """Whether either flag was given."""
        return bool(self._scheduler or self._local_workers)

    def require(self) -> None:
        """Raises:
            FailedPrecondition: no cluster is configured (names both flags)."""
        if not self.configured:
            raise FailedPrecondition(NO_CLUSTER)

    def address(self) -> str:
        """The scheduler's address; starts the LocalCluster the first time it is needed.

        Raises:
            FailedPrecondition: no cluster is configured, or the daemon is closing.
        """
        self.require()
        if self._scheduler:
            return self._scheduler
        with self._lock:
            if self._closed:
                raise FailedPrecondition("the daemon is shutting down: no Dask cluster")
            if self._local is None:
                from distributed import LocalCluster

                # Processes, one thread each: XGBoost threads itself inside each worker,
                # and a worker process keeps a crashing fit away from the others.
                self._local = LocalCluster(n_workers=self._local_workers, threads_per_worker=1,
                                           processes=True, dashboard_address=":0")  # type: ignore[no-untyped-call]
                log.info("dask_local_cluster_started", workers=self._local_workers,
                         scheduler=self._local.scheduler_address)
            return str(self._local.scheduler_address)

    def close(self) -> None:
        """Closes the LocalCluster, if one was started; later address() calls fail."""
        with self._lock:
            self._closed = True
            local, self._local = self._local, None
        if local is not None:
            local.close()
            log.info("dask_local_cluster_closed")
