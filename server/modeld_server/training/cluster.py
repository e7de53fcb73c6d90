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

from modeld_server.errors import FailedPrecondition

log = structlog.get_logger(__name__)

ENGINES = ("local", "dask")
NO_CLUSTER = ("engine dask needs a Dask cluster: start the daemon with --dask-scheduler "
              "ADDRESS or --dask-local N")


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
