"""Where TrainRequest.engine=dask jobs train: a scheduler address, or a local cluster.

The daemon never imports dask or distributed. With --dask-scheduler it only passes the
address on: the training worker connects. With --dask-local N it starts a scheduler and N
worker processes in a process of their own (dask_local.py) on the first engine=dask job,
and again if that process has died since; a daemon that never trains on Dask pays nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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

    def __init__(self, scheduler: str = "", local_workers: int = 0,
                 local_log: Path | None = None) -> None:
        self._scheduler = scheduler
        self._local_workers = local_workers
        self._local_log = local_log
        self._local: LocalCluster | None = None
        self._starting: LocalCluster | None = None  # close() kills it: no waiting for it
        self._lock = threading.Lock()
        self._closed = False

    @property
    def configured(self) -> bool:
        """Whether either flag was given."""
        return bool(self._scheduler or self._local_workers)

    @property
    def local(self) -> bool:
        """Whether the cluster is the daemon's own (--dask-local): its workers may be
        restarted after a job that broke them (dask_engine.py)."""
        return bool(self._local_workers) and not self._scheduler

    def require(self) -> None:
        """Raises:
            FailedPrecondition: no cluster is configured (names both flags)."""
        if not self.configured:
            raise FailedPrecondition(NO_CLUSTER)

    def address(self) -> str:
        """The scheduler's address; starts the local cluster the first time it is needed,
        and again if its process has died since (a new address).

        Raises:
            FailedPrecondition: no cluster is configured, the daemon is closing, or the
                local cluster did not start.
        """
        self.require()
        if self._scheduler:
            return self._scheduler
        with self._lock:
            if self._closed:
                raise FailedPrecondition("the daemon is shutting down: no Dask cluster")
            if self._local is not None and self._local.exit_code() is not None:
                log.warning("dask_local_cluster_lost", scheduler=self._local.address,
                            exit_code=self._local.exit_code(), log=str(self._local.log))
                self._local.close()
                self._local = None
            if self._local is None:
                self._local = self._start()
                log.info("dask_local_cluster_started", workers=self._local_workers,
                         scheduler=self._local.address, pid=self._local.pid)
            if self._closed:  # closed as it started: close() takes it once we let go
                raise FailedPrecondition("the daemon is shutting down: no Dask cluster")
            return self._local.address

    def _start(self) -> LocalCluster:
        """Starts the local cluster (under the lock); close() meanwhile kills it."""
        starting = LocalCluster.spawn(self._local_workers, self._local_log)
        self._starting = starting
        try:
            if self._closed:  # close() came between the check and the line above
                starting.kill()
            starting.wait_ready(self._local_workers)
        except FailedPrecondition:
            if self._closed:
                raise FailedPrecondition("the daemon is shutting down: no Dask cluster"
                                         ) from None
            raise
        finally:
            self._starting = None
        return starting

    def close(self) -> None:
        """Closes the local cluster, if one was started; later address() calls fail."""
        # Not under the lock first: address() holds it while the cluster starts (up to
        # START_SECONDS), and the daemon's stop would wait that long past its grace period.
        self._closed = True
        starting = self._starting
        if starting is not None:
            starting.kill()  # its start fails at once; address() says the daemon is closing
        with self._lock:
            local, self._local = self._local, None
        if local is not None:
            local.close()
            log.info("dask_local_cluster_closed")


class LocalCluster:
    """--dask-local's scheduler and workers, in a process group of their own (dask_local.py).

    The daemon holds the child's stdin: closing it, or the daemon's death, closes the
    cluster. The daemon imports nothing of Dask for it.
    """

    def __init__(self, process: subprocess.Popen[bytes], address: str, log: Path) -> None:
        self.process = process
        self.address = address
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, workers: int, log_path: Path | None) -> LocalCluster:
        """Starts the cluster and waits until its `workers` have registered.

        Raises:
            FailedPrecondition: it exited or said nothing within START_SECONDS (naming
                its exit code and its log file).
        """
        cluster = cls.spawn(workers, log_path)
        cluster.wait_ready(workers)
        return cluster

    @classmethod
    def spawn(cls, workers: int, log_path: Path | None) -> LocalCluster:
        """Starts the cluster's process; its address is known once wait_ready() returns."""
        log_path = log_path or Path(tempfile.gettempdir()) / "modeld-dask-local.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as err:
            # Its own session: Ctrl-C at the daemon's terminal is the daemon's to act on.
            process = subprocess.Popen(
                [sys.executable, "-m", "modeld_server.training.dask_local", str(workers)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True)
        return cls(process, "", log_path)

    def wait_ready(self, workers: int) -> None:
        """Waits until the cluster names its scheduler (sets `address`).

        Raises:
            FailedPrecondition: it exited, was killed, or said nothing within START_SECONDS
                (naming its exit code and its log file); it is then killed, at once: a
                cluster that did not start has nothing to close cleanly.
        """
        line = _first_line(self.process, START_SECONDS)
        exited = self.process.poll()
        try:
            self.address = str(json.loads(line)["scheduler"])
        except (ValueError, KeyError, TypeError):
            self.kill()
            self._reap()
            said = (f"exit code {exited}" if exited is not None
                    else f"no answer in {START_SECONDS} s")
            raise FailedPrecondition(
                f"the local Dask cluster (--dask-local {workers}) did not start ({said}); "
                f"its log: {self.log}") from None

    def exit_code(self) -> int | None:
        """None while its process runs."""
        return self.process.poll()

    def close(self) -> None:
        """Closes its stdin (the cluster shuts down cleanly), then kills its process group
        if it has not exited within CLOSE_SECONDS."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # it is gone already: the pipe is broken
                self.process.stdin.close()
        try:
            self.process.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("dask_local_cluster_killed", pid=self.process.pid,
                        waited_seconds=CLOSE_SECONDS)
        # Its workers are in its process group: none outlives it, whatever it did.
        self.kill()
        self._reap()

    def kill(self) -> None:
        """Kills its process group (SIGKILL); does not wait. Safe from any thread."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def _reap(self) -> None:
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


START_SECONDS = 120
"""How long the local cluster may take to start (importing distributed and spawning the
worker processes takes ~5 s on a quiet machine)."""
CLOSE_SECONDS = 30
"""How long it may take to close cleanly before its process group is killed."""


def _first_line(process: subprocess.Popen[bytes], seconds: float) -> bytes:
    """The first line `process` writes on stdout: b"" if it exits or `seconds` pass first."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + seconds
    read = b""
    while b"\n" not in read:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:  # it exited
                process.wait()
                return b""
            read += chunk
    return read.split(b"\n", 1)[0]
