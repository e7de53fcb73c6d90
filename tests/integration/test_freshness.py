"""GetStatus freshness warnings through a live daemon: policy fields, rows, dataset, age."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import LiveDaemon

DAY = 86400


@pytest.fixture
def iris(daemon: LiveDaemon) -> LiveDaemon:
    job = daemon.train("iris", path="iris.csv", target="species",
                       algorithm="logistic_regression", cv_folds=2)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    return daemon


def status(daemon: LiveDaemon) -> pb.ModelStatus:
    return daemon.stub.GetStatus(pb.GetStatusRequest(model="iris")).models[0]


def set_policy(daemon: LiveDaemon, **fields: object) -> pb.Policy:
    return daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
        model="iris", **fields)))  # type: ignore[arg-type]


class TestFreshness:
    def test_no_policy_no_warnings(self, iris: LiveDaemon) -> None:
        assert list(status(iris).warnings) == []

    def test_policy_round_trips_max_age_and_min_training_rows(self, iris: LiveDaemon) -> None:
        sent = set_policy(iris, max_age=duration_pb2.Duration(seconds=30 * DAY),
                          min_training_rows=1000)
        got = iris.stub.GetPolicy(pb.GetPolicyRequest(model="iris"))
        assert got == sent
        assert (got.max_age.seconds, got.min_training_rows) == (30 * DAY, 1000)

    @pytest.mark.parametrize(("fields", "details"), [
        ({"max_age": duration_pb2.Duration(seconds=-60)},
         "policy.max_age must be between 0 and 3153600000 seconds (100 years), got -60 seconds"),
        ({"min_training_rows": -1}, "policy.min_training_rows must be >= 0, got -1"),
    ])
    def test_bad_values_are_invalid_argument(self, iris: LiveDaemon, fields: dict[str, object],
                                             details: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            set_policy(iris, **fields)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT, details)

    def test_too_few_rows_warns_and_the_model_still_serves(self, iris: LiveDaemon) -> None:
        set_policy(iris, min_training_rows=151)
        model = status(iris)
        assert [(w.kind, w.message) for w in model.warnings] == [
            ("min_training_rows",
             "trained on 150 rows, fewer than the policy's min_training_rows 151")]
        assert model.state == pb.LOAD_STATE_READY
        set_policy(iris, min_training_rows=150)
        assert list(status(iris).warnings) == []

    def test_too_old_warns_by_the_services_clock(self, iris: LiveDaemon) -> None:
        set_policy(iris, max_age=duration_pb2.Duration(seconds=30 * DAY))
        assert list(status(iris).warnings) == []
        iris.runtime.service.freshness.clock = lambda: time.time() + 31 * DAY
        [warning] = status(iris).warnings
        assert warning.kind == "max_age"
        assert warning.message.startswith("trained 31.0d ago, older than the policy's "
                                          "max_age 30.0d")

    def test_an_edited_dataset_warns_soon_after(self, iris: LiveDaemon) -> None:
        """The hash is computed in the background: GetStatus polls until it appears."""
        path = iris.data_root / "iris.csv"
        with path.open("a") as fh:
            fh.write("5.0,3.0,1.5,0.2,setosa\n")
        deadline = time.monotonic() + 60
        while not (warnings := list(status(iris).warnings)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w.kind for w in warnings] == ["dataset_changed"]
        assert warnings[0].message.startswith("dataset 'iris.csv' changed on disk since "
                                              "training (sha256 ")
