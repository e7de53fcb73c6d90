"""Serve-only replicas (--no-training) and training that starts only when it is needed.

Real daemons as subprocesses, observed from outside: gRPC status, and their process trees
read from /proc (the training forkserver is the daemon's only child process).
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import wait_job
from tests.integration.test_faults_processes import Served, process_tree

TRAIN = pb.TrainRequest(model="spam", algorithm="logistic_regression", cv_folds=2,
                        dataset=pb.Dataset(path="spambase.csv", target="is_spam"))
TRAINING_OFF = ("training is off on this daemon (--no-training); send {} to a daemon that "
                "trains")


def one_row(base: Path) -> pb.PredictRequest:
    """One all-zero spambase row for model "spam"."""
    header = (base / "data" / "spambase.csv").read_text().split("\n", 1)[0].split(",")
    columns = [c for c in header if c != "is_spam"]
    return pb.PredictRequest(model="spam", dense=pb.DenseRows(columns=columns,
                                                              values=[0.0] * len(columns)))


def children(pid: int) -> dict[int, tuple[int, str]]:
    """Every process below `pid` (not `pid` itself)."""
    return {p: v for p, v in process_tree(pid).items() if p != pid}


def wait_for_children(pid: int, timeout: float = 120.0) -> dict[int, tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while not (found := children(pid)):
        assert time.monotonic() < deadline, f"no child process of {pid} in {timeout:.0f} s"
        time.sleep(0.05)
    return found


def mapped_files(pid: int) -> str:
    """The files mapped into the process: its shared libraries, among them extensions."""
    return Path(f"/proc/{pid}/maps").read_text()


class TestServeOnly:
    """--no-training: serves what another daemon trained, refuses to train, forks nothing."""

    def test_train_and_set_schedule_are_refused_and_no_process_starts(
            self, tmp_path: Path) -> None:
        """Train and SetSchedule: FAILED_PRECONDITION naming the flag; the daemon keeps no
        child process, before and after the refused calls and a Predict."""
        with Served(tmp_path, state="trainer") as trainer:
            assert wait_job(trainer.stub, trainer.stub.Train(TRAIN).id).state == \
                pb.JOB_STATE_SUCCEEDED
        with Served(tmp_path, "--no-training", state="replica") as replica:
            assert children(replica.process.pid) == {}
            answer = replica.stub.Predict(one_row(tmp_path), timeout=30)
            assert (answer.version, len(answer.labels)) == (1, 1)
            with pytest.raises(grpc.RpcError) as train:
                replica.stub.Train(TRAIN, timeout=30)
            assert train.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert train.value.details() == TRAINING_OFF.format("Train")
            schedule = pb.Schedule(model="spam", train=TRAIN, interval_seconds=3600)
            with pytest.raises(grpc.RpcError) as scheduled:
                replica.stub.SetSchedule(pb.SetScheduleRequest(schedule=schedule), timeout=30)
            assert scheduled.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert scheduled.value.details() == TRAINING_OFF.format("SetSchedule")
            assert replica.stub.ListJobs(pb.ListJobsRequest(), timeout=30).jobs == []
            assert children(replica.process.pid) == {}

    def test_an_xgboost_model_is_served_without_scikit_learn_or_pandas(
            self, tmp_path: Path) -> None:
        """Numeric XGBoost: only libxgboost is mapped into the serve-only daemon (no
        scikit-learn, pandas, SciPy extension), and it answers the library's probabilities."""
        import numpy as np
        from xgboost import XGBClassifier

        with Served(tmp_path, state="trainer") as trainer:
            xgb = pb.TrainRequest(model="spam", algorithm="xgboost", cv_folds=2,
                                  dataset=TRAIN.dataset)
            assert wait_job(trainer.stub, trainer.stub.Train(xgb).id).state == \
                pb.JOB_STATE_SUCCEEDED
        # --fast-paths: the lean path is one of them (make test-no-fast-paths sets them off).
        with Served(tmp_path, "--no-training", "--fast-paths", state="replica") as replica:
            request = one_row(tmp_path)
            answer = replica.stub.Predict(request, timeout=30)
            maps = mapped_files(replica.process.pid)
            assert "/xgboost/lib/libxgboost" in maps
            for library in ("/sklearn/", "/pandas/", "/scipy/"):
                assert library not in maps, library
            model = XGBClassifier()
            model.load_model(tmp_path / "registry" / "spam" / "versions" / "1" / "model.ubj")
            expected = model.predict_proba(np.array([request.dense.values]))
            got = np.array(answer.probabilities, dtype=np.float64).reshape(1, 2)
            assert np.array_equal(got.astype(np.float32), expected)

    def test_a_refused_train_with_bad_fields_still_names_the_flag(self, tmp_path: Path) -> None:
        """The refusal comes first: a serve-only daemon does not validate what it won't run."""
        with Served(tmp_path, "--no-training") as replica:
            with pytest.raises(grpc.RpcError) as train:
                replica.stub.Train(pb.TrainRequest(model="no such/model"), timeout=30)
            assert train.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert train.value.details() == TRAINING_OFF.format("Train")


class TestDefaultDaemonTrains:
    """Without the flag the daemon trains, its forkserver started after it serves."""

    def test_the_first_train_succeeds_through_a_forkserver(self, tmp_path: Path) -> None:
        """Train on a fresh default daemon publishes version 1, trained in a child process."""
        with Served(tmp_path) as daemon:
            job = wait_job(daemon.stub, daemon.stub.Train(TRAIN, timeout=60).id)
            assert (job.state, job.version, job.activated) == (pb.JOB_STATE_SUCCEEDED, 1, True)
            assert wait_for_children(daemon.process.pid)
            answer = daemon.stub.Predict(one_row(tmp_path), timeout=30)
            assert answer.version == 1
