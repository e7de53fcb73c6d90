"""training/jobs.py on a serve-only daemon: nothing is queued and no process is started,
whoever submits (Train, or the scheduler's due run)."""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from pathlib import Path

import pytest

from modeld_server.errors import FailedPrecondition
from modeld_server.registry.store import RegistryStore
from modeld_server.training.jobs import JobManager
from modeld_server.types import DatasetSpec, Task, TrainSpec

SPEC = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                 algorithm="logistic_regression", task=Task.CLASSIFICATION)


@pytest.fixture
def jobs(tmp_path: Path) -> JobManager:
    return JobManager(RegistryStore(tmp_path / "registry"), tmp_path / "data",
                      tmp_path / "state", training=False)


def test_a_submit_is_refused_naming_the_flag(jobs: JobManager, tmp_path: Path) -> None:
    """The scheduler submits through the same call: a due run is refused the same way."""
    with pytest.raises(FailedPrecondition, match=(
            r"^training is off on this daemon \(--no-training\); send Train to a daemon "
            r"that trains$")):
        jobs.submit(SPEC)
    assert jobs.list("", 10) == []
    assert not any((tmp_path / "state").glob("**/*.json"))


def test_warm_up_starts_no_process(jobs: JobManager) -> None:
    """Neither the forkserver (its pid unchanged, None unless another test started it) nor
    a warm-up process."""
    server = forkserver._forkserver  # type: ignore[attr-defined]  # the module's singleton
    pid, children = server._forkserver_pid, multiprocessing.active_children()
    jobs.warm_up()
    assert (server._forkserver_pid, multiprocessing.active_children()) == (pid, children)
