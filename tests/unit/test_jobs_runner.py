"""JobManager's queue and cancel paths with a fake worker: the runner starts a thread instead
of a forkserver process, and the worker says what the test tells it to over a real pipe."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from modeld_server.errors import AlreadyExists, FailedPrecondition, ResourceExhausted
from modeld_server.registry.store import RegistryStore
from modeld_server.training.jobs import JobLimits, JobManager
from modeld_server.training.messages import Failure, Progress
from modeld_server.types import DatasetSpec, JobState, Task, TrainSpec
from tests.unit._registry_helpers import skip_disk_flush

Worker = Callable[[Any, threading.Event], int]
"""Runs in the fake process: given the pipe's sending end and the kill event; returns the
exit code."""


def hangs(conn: Any, killed: threading.Event) -> int:
    conn.send(Progress("fit", 0.5, "fitting", {}))
    killed.wait(30)
    return -9


def fails(conn: Any, killed: threading.Event) -> int:
    conn.send(Failure("InvalidArgument", "column 'x' is empty"))
    return 0


def dies(conn: Any, killed: threading.Event) -> int:
    return 3


def oom_killed(conn: Any, killed: threading.Event) -> int:
    """Dies as the kernel's OOM killer (or an operator) leaves a process: SIGKILL."""
    conn.send(Progress("fit", 0.5, "fitting", {}))
    return -9


class FakeProcess:
    def __init__(self, worker: Worker, args: tuple[Any, ...]) -> None:
        # The runner closes its copy of the sending end once the process started, as a
        # real child keeps its own: so does this one.
        self._worker, self._conn = worker, Connection(os.dup(args[3].fileno()), readable=False)
        self._killed = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.exitcode: int | None = None
        self.pid = os.getpid()

    def _main(self) -> None:
        code = self._worker(self._conn, self._killed)
        self._conn.close()
        self.exitcode = code

    def start(self) -> None:
        self._thread.start()

    def kill(self) -> None:
        self._killed.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class FakeProcesses:
    """A multiprocessing context whose workers are the next of `workers`, in threads."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []

    def Pipe(self, duplex: bool = True) -> tuple[Any, Any]:
        return multiprocessing.Pipe(duplex)

    def Process(self, *, target: Any, daemon: bool, args: tuple[Any, ...]) -> FakeProcess:
        return FakeProcess(self.workers.pop(0), args)


@pytest.fixture
def processes() -> FakeProcesses:
    return FakeProcesses()


@pytest.fixture
def jobs(tmp_path: Path, processes: FakeProcesses,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[JobManager]:
    skip_disk_flush(monkeypatch)
    built = manager(tmp_path, processes, JobLimits(memory_mb=1 << 30))
    yield built
    built.close(wait=5.0)


def manager(tmp_path: Path, processes: FakeProcesses, limits: JobLimits) -> JobManager:
    return JobManager(RegistryStore(tmp_path / "registry"), tmp_path / "data",
                      tmp_path / "state", max_concurrent=1, max_queued=1, limits=limits,
                      processes=processes)


def spec(model: str = "m", request_id: str = "", seed: int = 42) -> TrainSpec:
    return TrainSpec(model=model, dataset=DatasetSpec("d.csv", "y"), algorithm="ridge",
                     task=Task.REGRESSION, request_id=request_id, seed=seed)


def wait_for(jobs: JobManager, job_id: str, check: Callable[[Any], bool]) -> Any:
    """The first record of the job that passes `check` (WatchJob's path; no sleeps)."""
    for record in jobs.watch(job_id, poll=0.05):
        if check(record):
            return record
    raise AssertionError(f"job {job_id} ended as {record} without passing the check")


def one_running_one_queued(jobs: JobManager, processes: FakeProcesses) -> tuple[Any, Any]:
    """A job whose worker hangs in its fit, and one queued behind it for the only slot."""
    processes.workers.append(hangs)
    running = jobs.submit(spec())
    wait_for(jobs, running.id, lambda r: r.phase == "fit")
    return running, jobs.submit(spec("n"))


class TestQueue:
    def test_a_second_job_waits_for_the_slot_and_a_third_is_refused(
            self, jobs: JobManager, processes: FakeProcesses) -> None:
        processes.workers += [hangs, fails]
        first = jobs.submit(spec())
        wait_for(jobs, first.id, lambda r: r.phase == "fit")
        second = jobs.submit(spec("n"))
        assert jobs.get(second.id).state is JobState.QUEUED
        assert jobs.counts() == (1, 1)
        assert (jobs.has_active("m"), jobs.has_active("n"), jobs.has_active("o")) == (
            True, True, False)
        with pytest.raises(ResourceExhausted) as err:
            jobs.submit(spec("o"))
        assert err.value.message == ("the training queue is full (1 jobs waiting, "
                                     "max_queued_jobs=1)")
        assert jobs.cancel(first.id).error == "cancelled by request"
        failed = wait_for(jobs, second.id, lambda r: r.state.final)
        assert (failed.state, failed.error) == (JobState.FAILED,
                                                "InvalidArgument: column 'x' is empty")

    def test_the_same_request_id_is_the_same_job(self, jobs: JobManager,
                                                 processes: FakeProcesses) -> None:
        processes.workers.append(hangs)
        first = jobs.submit(spec(request_id="r1"))
        assert jobs.submit(spec(request_id="r1")).id == first.id
        with pytest.raises(AlreadyExists):
            jobs.submit(spec(request_id="r1", seed=7))
        jobs.cancel(first.id)

    def test_a_serve_only_runner_refuses_every_job(self, tmp_path: Path) -> None:
        manager = JobManager(RegistryStore(tmp_path / "r"), tmp_path / "d", tmp_path / "s",
                             training=False, processes=FakeProcesses())
        with pytest.raises(FailedPrecondition):
            manager.submit(spec())


class TestCancel:
    def test_a_queued_job_is_cancelled_without_starting(
            self, jobs: JobManager, processes: FakeProcesses) -> None:
        running, queued = one_running_one_queued(jobs, processes)
        record = jobs.cancel(queued.id)
        assert (record.state, record.error) == (JobState.CANCELLED, "cancelled while queued")
        assert jobs.counts() == (1, 0)
        jobs.cancel(running.id)
        assert processes.workers == []  # the cancelled job never asked for a worker

    def test_a_running_job_is_killed_and_its_slot_freed(
            self, jobs: JobManager, processes: FakeProcesses) -> None:
        processes.workers.append(hangs)
        record = jobs.submit(spec())
        running = wait_for(jobs, record.id, lambda r: r.phase == "fit")
        assert (running.state, running.progress, running.message) == (
            JobState.RUNNING, 0.5, "fitting")
        cancelled = jobs.cancel(record.id)
        assert (cancelled.state, cancelled.error) == (JobState.CANCELLED,
                                                      "cancelled by request")
        jobs.drain(timeout=30)
        assert jobs.counts() == (0, 0)

    def test_an_ended_job_cannot_be_cancelled(self, jobs: JobManager,
                                              processes: FakeProcesses) -> None:
        processes.workers.append(dies)
        record = jobs.submit(spec())
        ended = wait_for(jobs, record.id, lambda r: r.state.final)
        assert (ended.state, ended.error) == (
            JobState.FAILED, "worker process exited with code 3 without a result")
        with pytest.raises(FailedPrecondition) as err:
            jobs.cancel(record.id)
        assert err.value.message == f"job {record.id} already ended (failed)"

    def test_close_fails_what_is_queued_or_running(
            self, jobs: JobManager, processes: FakeProcesses) -> None:
        running, queued = one_running_one_queued(jobs, processes)
        jobs.close(wait=5.0)
        for job_id in (running.id, queued.id):
            assert (jobs.get(job_id).state, jobs.get(job_id).error) == (
                JobState.FAILED, "interrupted by shutdown")
        with pytest.raises(FailedPrecondition) as err:
            jobs.submit(spec("o"))
        assert err.value.message == "the daemon is shutting down and takes no new jobs"


class TestLimits:
    """The runner kills a worker past its time or memory limit; the job fails naming the
    limit, the slot is freed and the next job runs."""

    def test_a_job_past_train_timeout_is_killed_and_failed(
            self, tmp_path: Path, processes: FakeProcesses,
            monkeypatch: pytest.MonkeyPatch) -> None:
        skip_disk_flush(monkeypatch)
        jobs = manager(tmp_path, processes, JobLimits(timeout=0.01, memory_mb=1 << 30))
        processes.workers += [hangs, fails]
        record = jobs.submit(spec())
        ended = wait_for(jobs, record.id, lambda r: r.state.final)
        assert (ended.state, ended.phase, ended.error, ended.message, ended.progress) == (
            JobState.FAILED, "done", "exceeded the training time limit (train_timeout=0.01s)",
            "exceeded the training time limit (train_timeout=0.01s)", 0.5)
        after = jobs.submit(spec("n"))  # the slot is free again
        assert wait_for(jobs, after.id, lambda r: r.state.final).error == (
            "InvalidArgument: column 'x' is empty")
        jobs.close(wait=5.0)
        assert jobs.counts() == (0, 0)

    def test_a_job_over_train_memory_mb_is_killed_and_failed(
            self, tmp_path: Path, processes: FakeProcesses,
            monkeypatch: pytest.MonkeyPatch) -> None:
        skip_disk_flush(monkeypatch)
        # The fake worker is a thread, so the job's process tree is this test's process:
        # more than the 1 MiB allowed, measured from /proc as for a real worker.
        jobs = manager(tmp_path, processes, JobLimits(memory_mb=1))
        processes.workers.append(hangs)
        record = jobs.submit(spec())
        ended = wait_for(jobs, record.id, lambda r: r.state.final)
        match = re.fullmatch(r"used (\d+) MiB, over the training memory limit "
                             r"\(train_memory_mb=1\)", ended.error)
        assert match is not None, ended.error
        assert int(match.group(1)) > 1
        assert (ended.state, ended.phase, ended.message) == (JobState.FAILED, "done",
                                                            ended.error)
        jobs.close(wait=5.0)

    def test_a_worker_killed_outside_the_runner_names_sigkill_and_memory(
            self, jobs: JobManager, processes: FakeProcesses) -> None:
        processes.workers.append(oom_killed)
        record = jobs.submit(spec())
        ended = wait_for(jobs, record.id, lambda r: r.state.final)
        assert (ended.state, ended.phase, ended.error) == (
            JobState.FAILED, "done",
            "worker process was killed by SIGKILL (out of memory, or killed by an operator)")
        assert jobs.get(record.id) == ended
