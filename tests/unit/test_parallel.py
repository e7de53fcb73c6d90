"""Fits side by side in forked processes: the same answers as in order, failures surfaced."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeld_server import artifacts
from modeld_server.training import parallel, worker
from modeld_server.training.parallel import FitProcessDied, fork_map
from modeld_server.types import DatasetSpec, Task, TrainSpec

ROOT = Path(__file__).resolve().parents[2]


def square_and_pid(item: int) -> tuple[int, int]:
    return item * item, os.getpid()


class TwoArgs(Exception):
    """Pickles as TwoArgs("5+1"), which its __init__ refuses when unpickled; and it holds a
    lock, which does not pickle at all (tblib, imported with distributed, pickles exceptions
    without calling __init__, so the lock is what keeps this one from crossing)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}+{b}")
        self.lock = threading.Lock()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has stopped fitting)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def children() -> set[int]:
    """This process's child processes, zombies (exited, not yet reaped) included."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


class TestForkMap:
    def test_every_item_is_answered_once_by_forked_processes(self) -> None:
        before = children()
        answers = dict(fork_map(square_and_pid, list(range(7)), workers=2))
        assert sorted(answers) == list(range(7))
        assert {i: sq for i, (sq, _) in answers.items()} == {i: i * i for i in range(7)}
        assert os.getpid() not in {pid for _, pid in answers.values()}
        assert len({pid for _, pid in answers.values()}) == 2
        assert children() == before  # every fit process reaped

    def test_one_worker_runs_in_this_process_in_order(self) -> None:
        answers = list(fork_map(square_and_pid, [3, 1, 2], workers=1))
        assert answers == [(0, (9, os.getpid())), (1, (1, os.getpid())), (2, (4, os.getpid()))]

    def test_an_exception_in_a_child_is_raised_here_with_its_type(self) -> None:
        def fail_on_three(item: int) -> int:
            if item == 3:
                raise ValueError(f"bad item {item}")
            return item

        before = children()
        with pytest.raises(ValueError, match=r"^bad item 3$"):
            list(fork_map(fail_on_three, list(range(6)), workers=2))
        assert children() == before

    def test_an_unpicklable_exception_arrives_as_its_text(self) -> None:
        class Local(Exception):  # defined in a function: pickle cannot find it
            pass

        def fail(item: int) -> int:
            raise Local(f"item {item}")

        with pytest.raises(RuntimeError, match=r"^Local: item"):
            list(fork_map(fail, [1, 2], workers=2))

    def test_a_child_killed_mid_fit_fails_the_map_instead_of_hanging(self) -> None:
        def die(item: int) -> int:
            if item == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
            return item

        before = children()
        with pytest.raises(FitProcessDied, match="died without an answer"):
            list(fork_map(die, [0, 1, 2, 3], workers=2))
        assert children() == before

    def test_children_die_with_the_process_that_forked_them(self, tmp_path: Path) -> None:
        """CancelJob SIGKILLs the job's process: its fit processes must not fit on for nobody."""
        job = os.fork()
        if job == 0:  # the job's process
            try:
                def block(item: int) -> int:
                    (tmp_path / str(os.getpid())).touch()
                    time.sleep(60)
                    return item

                list(fork_map(block, [0, 1], workers=2))
            finally:
                os._exit(0)
        deadline = time.monotonic() + 20
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        fitters = [int(p.name) for p in tmp_path.iterdir()]
        assert len(fitters) == 2
        os.kill(job, signal.SIGKILL)
        os.waitpid(job, 0)
        while any(alive(pid) for pid in fitters) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(alive(pid) for pid in fitters)

    def test_a_refused_fork_runs_the_calls_here_in_order(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No memory for a process (ENOMEM): the job still trains, one fit after another."""
        def refuse() -> int:
            raise OSError(12, "Cannot allocate memory")

        monkeypatch.setattr(parallel.os, "fork", refuse)
        answers = list(fork_map(square_and_pid, [2, 3], workers=2))
        assert answers == [(0, (4, os.getpid())), (1, (9, os.getpid()))]

    def test_an_exception_that_cannot_be_rebuilt_arrives_as_its_text(self) -> None:
        """It pickles, but its __init__ does not take its args back: the parent still hears."""
        def fail(item: int) -> int:
            raise TwoArgs(item, 1)

        with pytest.raises(RuntimeError, match=r"^TwoArgs: 5\+1$"):
            list(fork_map(fail, [5, 5], workers=2))

    def test_available_cpus_counts_this_process_affinity(self) -> None:
        assert parallel.available_cpus() == len(os.sched_getaffinity(0))


class TestMemoryCap:
    def test_fewer_fits_at_once_when_their_copies_pass_half_the_limit(self) -> None:
        """Three copies of an 80 MiB matrix per fit, 1,000 MiB limit: two fits at once."""
        data = SimpleNamespace(x=np.zeros((80 * 1024 * 1024 // 8,)))
        assert worker._within_memory(8, data, 1000) == 2  # type: ignore[arg-type]
        assert worker._within_memory(8, data, 100) == 1  # type: ignore[arg-type]
        assert worker._within_memory(8, data, 0) == 8  # type: ignore[arg-type]


class TestTrainSideBySide:
    @pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest"])
    def test_two_processes_give_the_same_manifest_figures_as_one(
        self, tmp_path: Path, algorithm: str
    ) -> None:
        """Folds and the final fit in two processes: every metric and the saved model equal."""
        shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
        spec = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                         algorithm=algorithm,
                         task=Task.CLASSIFICATION, params={"n_estimators": "20"}
                         if algorithm == "random_forest" else {}, cv_folds=3)
        results: dict[int, dict[str, Any]] = {}
        for cpus in (1, 2):
            staging = tmp_path / f"staging{cpus}"
            staging.mkdir()
            results[cpus] = worker.train(spec, tmp_path, staging, lambda *a: None, cpus=cpus)
        one, two = results[1], results[2]
        assert one["timings"]["fit_processes"] == 1
        assert two["timings"]["fit_processes"] == 2
        assert two["timings"]["final_fit_seconds"] == 0.0  # it ran beside the folds
        assert one["metrics"] == two["metrics"]
        assert one["confusion_matrix"] == two["confusion_matrix"]
        files = sorted(p.name for p in (tmp_path / "staging1").iterdir())
        assert files == sorted(p.name for p in (tmp_path / "staging2").iterdir())
        for name in files:
            if name.endswith(".npy"):
                assert (tmp_path / "staging1" / name).read_bytes() == \
                    (tmp_path / "staging2" / name).read_bytes()
        x = pd.read_csv(tmp_path / "spambase.csv").drop(columns="is_spam").to_numpy()
        probabilities = []
        for cpus in (1, 2):
            fitted = artifacts.load(tmp_path / f"staging{cpus}", results[cpus]["format"],
                                    algorithm, "classification")
            probabilities.append(fitted.estimator.predict_proba(fitted.preprocess.transform(x)))
        np.testing.assert_array_equal(probabilities[0], probabilities[1])

    def test_xgboost_threads_itself_so_its_fits_stay_in_one_process(self, tmp_path: Path) -> None:
        shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
        spec = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                         algorithm="xgboost",
                         task=Task.CLASSIFICATION, params={"n_estimators": "5"}, cv_folds=2)
        result = worker.train(spec, tmp_path, tmp_path, lambda *a: None, cpus=2)
        assert result["timings"]["fit_processes"] == 1
        assert result["timings"]["final_fit_alongside"] == 0.0


class TestSideWork:
    def test_one_piece_runs_in_a_thread_beside_each_call_the_rest_at_finish(self) -> None:
        here = threading.get_ident()
        ran: list[tuple[int, int]] = []
        side = parallel.SideWork([lambda i=i: ran.append((i, threading.get_ident())) or i
                                  for i in range(3)])
        assert side.beside(lambda: "fold 1") == "fold 1"
        assert ran[0][0] == 0 and ran[0][1] != here
        assert side.finish() == [0, 1, 2]
        assert [i for i, _ in ran] == [0, 1, 2] and ran[1][1] == ran[2][1] == here

    def test_with_no_piece_left_beside_only_calls(self) -> None:
        side: parallel.SideWork[int] = parallel.SideWork([lambda: 1])
        assert [side.beside(lambda: "a"), side.beside(lambda: "b")] == ["a", "b"]
        assert side.finish() == [1]

    def test_a_failed_piece_is_raised_by_the_call_it_ran_beside(self) -> None:
        def broken() -> int:
            raise ValueError("piece")

        side = parallel.SideWork([broken])
        with pytest.raises(ValueError, match=r"^piece$"):
            side.beside(lambda: "fold")
