"""GetStatus, ListVersions, GetVersion and Rollback against a live daemon."""

from __future__ import annotations

import json

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import LiveDaemon


def train_versions(daemon: LiveDaemon, n: int, model: str = "iris") -> None:
    for _ in range(n):
        job = daemon.train(model, path="iris.csv", target="species",
                           algorithm="logistic_regression", cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error


def predict_version(daemon: LiveDaemon, model: str = "iris", version: int = 0) -> int:
    row = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
           "petal width (cm)": 0.2}
    request = pb.PredictRequest(model=model, version=version)
    request.records.rows.add().update(row)
    return daemon.stub.Predict(request).version


class TestStatus:
    def test_status_tells_active_loaded_and_metrics(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 1)
        status = daemon.stub.GetStatus(pb.GetStatusRequest())
        assert status.daemon.registry_root == str(daemon.registry.resolve())
        assert status.daemon.jobs_running == 0 and status.daemon.uptime_seconds > 0
        [model] = status.models
        assert (model.model, model.active_version, model.loaded_version) == ("iris", 1, 1)
        assert model.state == pb.LOAD_STATE_READY and model.last_error == ""
        assert model.algorithm == "logistic_regression" and model.task == pb.TASK_CLASSIFICATION
        assert 0.9 < model.metrics["accuracy"].mean <= 1.0
        assert model.last_reload_ms > 0

    def test_status_of_an_unknown_model_is_not_found(self, daemon: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.GetStatus(pb.GetStatusRequest(model="ghost"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "model 'ghost' not found"


class TestListVersions:
    def test_pages_cover_every_version_newest_first(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 5)
        seen, token = [], ""
        while True:
            page = daemon.stub.ListVersions(pb.ListVersionsRequest(
                model="iris", page_size=2, page_token=token))
            seen += [v.version for v in page.versions]
            token = page.next_page_token
            if not token:
                break
        assert seen == [5, 4, 3, 2, 1]
        assert page.active_version == 5

    def test_state_filter(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 3)
        active = daemon.stub.ListVersions(pb.ListVersionsRequest(
            model="iris", state=pb.VERSION_STATE_ACTIVE))
        assert [v.version for v in active.versions] == [3]
        inactive = daemon.stub.ListVersions(pb.ListVersionsRequest(
            model="iris", state=pb.VERSION_STATE_INACTIVE))
        assert [v.version for v in inactive.versions] == [2, 1]

    @pytest.mark.parametrize(("fields", "code"), [
        ({"model": "ghost"}, grpc.StatusCode.NOT_FOUND),
        ({"model": "../etc"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "iris", "page_size": 1001}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "iris", "page_size": -1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "iris", "page_token": "garbage"}, grpc.StatusCode.INVALID_ARGUMENT),
    ])
    def test_bad_requests(self, daemon: LiveDaemon, fields: dict[str, object],
                          code: grpc.StatusCode) -> None:
        train_versions(daemon, 1)
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.ListVersions(pb.ListVersionsRequest(**fields))  # type: ignore[arg-type]
        assert err.value.code() == code

    def test_get_version_returns_the_manifest_as_stored(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 2)
        version = daemon.stub.GetVersion(pb.GetVersionRequest(model="iris", version=1))
        on_disk = json.loads((daemon.registry / "iris/versions/1/manifest.json").read_text())
        assert json.loads(version.manifest_json) == on_disk
        assert version.state == pb.VERSION_STATE_INACTIVE and version.rows == 150
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.GetVersion(pb.GetVersionRequest(model="iris", version=9))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


class TestRollback:
    def test_rollback_to_previous_then_back(self, daemon: LiveDaemon) -> None:
        """to_version 0 goes to the version active before; twice swaps back (kubectl undo)."""
        train_versions(daemon, 3)
        events = (daemon.registry / "iris/events.jsonl").read_text()
        plan = daemon.stub.Rollback(pb.RollbackRequest(model="iris", dry_run=True))
        assert (plan.previous_version, plan.active_version) == (3, 2)
        assert (daemon.registry / "iris/ACTIVE").read_text() == "3\n"  # a dry run: no change
        assert (daemon.registry / "iris/events.jsonl").read_text() == events
        assert predict_version(daemon) == 3
        first = daemon.stub.Rollback(pb.RollbackRequest(model="iris", reason="bad deploy"))
        assert (first.previous_version, first.active_version) == (3, 2)
        assert predict_version(daemon) == 2
        assert (daemon.registry / "iris/ACTIVE").read_text() == "2\n"
        second = daemon.stub.Rollback(pb.RollbackRequest(model="iris"))
        assert (second.previous_version, second.active_version) == (2, 3)

    def test_rollback_to_an_explicit_version_is_logged(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 3)
        result = daemon.stub.Rollback(pb.RollbackRequest(model="iris", to_version=1,
                                                         reason="incident 7"))
        assert result.active_version == 1
        assert predict_version(daemon) == 1
        status = daemon.stub.GetStatus(pb.GetStatusRequest(model="iris")).models[0]
        assert (status.active_version, status.loaded_version) == (1, 1)
        events = [json.loads(line) for line in
                  (daemon.registry / "iris/events.jsonl").read_text().splitlines()]
        last = events[-1]
        assert (last["event"], last["version"], last["previous"], last["reason"]) == (
            "rolled_back", 1, 3, "incident 7")

    def test_pinned_version_predicts_without_rollback(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 2)
        assert predict_version(daemon, version=1) == 1
        assert predict_version(daemon) == 2

    @pytest.mark.parametrize(("fields", "code", "details"), [
        ({"to_version": 9}, grpc.StatusCode.NOT_FOUND, "version 9 of model 'iris' not found"),
        ({"to_version": 2}, grpc.StatusCode.FAILED_PRECONDITION,
         "version 2 of model 'iris' is already active"),
        ({"to_version": -1}, grpc.StatusCode.INVALID_ARGUMENT,
         "to_version and expected_active_version must be >= 0"),
        ({"to_version": 1, "expected_active_version": 1}, grpc.StatusCode.FAILED_PRECONDITION,
         "expected_active_version is 1 but version 2 of model 'iris' is active"),
    ])
    def test_bad_rollbacks_change_nothing(self, daemon: LiveDaemon, fields: dict[str, object],
                                          code: grpc.StatusCode, details: str) -> None:
        train_versions(daemon, 2)
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Rollback(pb.RollbackRequest(model="iris", **fields))  # type: ignore[arg-type]
        assert (err.value.code(), err.value.details()) == (code, details)
        assert (daemon.registry / "iris/ACTIVE").read_text() == "2\n"

    def test_rollback_without_history_is_failed_precondition(self, daemon: LiveDaemon) -> None:
        train_versions(daemon, 1)
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Rollback(pb.RollbackRequest(model="iris"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == "model 'iris' has no previously active version"
