"""rpc/servicer.py against a fake service: each method converts the request, makes one call
and converts the answer; the service's domain errors reach the caller as their status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import grpc
import numpy as np
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.errors import FailedPrecondition, InvalidArgument, NotFound
from modeld_server.monitoring.report import DriftReport, FeatureDrift
from modeld_server.registry.manifest import Manifest, VersionSummary
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.struct_rows import PredictRequestWire
from modeld_server.service import ModelService
from modeld_server.serving.loaded import Prediction
from modeld_server.serving.manager import ModelView
from modeld_server.training.gate import Policy
from modeld_server.training.jobrecord import JobRecord
from modeld_server.training.scheduler import ScheduleSpec, ScheduleState
from modeld_server.types import (
    DaemonInfo,
    DatasetSpec,
    JobState,
    LoadState,
    RollbackResult,
    Task,
    TrainSpec,
    VersionPage,
)
from modeld_server.views import (
    AliasView,
    DenseRows,
    DriftView,
    ModelStatus,
    RecordRows,
    VersionDetail,
)

SPEC = TrainSpec(model="spam", dataset=DatasetSpec("spam.csv", "is_spam"), algorithm="xgboost",
                 task=Task.CLASSIFICATION)
JOB = JobRecord(id="j1", spec=SPEC, state=JobState.RUNNING, phase="fit", progress=0.5,
                created_at=10.0)
SUMMARY = VersionSummary.from_json({
    "version": 2, "algorithm": "xgboost", "task": "classification", "job_id": "j1",
    "created_at": "2026-11-29T10:00:00+00:00", "dataset": {"path": "spam.csv", "rows": 7},
    "metrics": {"f1": {"mean": 0.9, "std": 0.01}}, "features": ["a"], "classes": [0, 1]})
SCHEDULE = (ScheduleSpec(model="spam", train=SPEC.to_json(), dataset_path="spam.csv",
                         interval_seconds=60.0, min_interval_seconds=30.0),
            ScheduleState(next_run_at=100.0, last_run_at=None, last_outcome="queued j1"))


class FakeService:
    """Answers each call with a fixed domain value and records the call; or raises `fail`."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail = fail

    def _answer(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                value: Any) -> Any:
        self.calls.append((name, args, kwargs))
        if self.fail is not None:
            raise self.fail
        return value

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self._answer(name, args, kwargs, ANSWERS[name])

    def watch_job(self, job_id: str) -> Iterator[JobRecord]:
        self._answer("watch_job", (job_id,), {}, None)
        yield JOB
        yield JOB.but(state=JobState.SUCCEEDED, version=2)


VIEW = ModelView(model="spam", active=2, loaded=2, state=LoadState.READY, error="",
                 current=None)
STATUS = ModelStatus(view=VIEW, summary=SUMMARY, versions=[1, 2], aliases={"prod": 2},
                     schedule=SCHEDULE, warnings=[], drift="ok")
INFO = DaemonInfo(build_version="0.1.0", started_at=5.0, uptime_seconds=1.5,
                  registry_root="/r", data_root="/d", jobs_running=1, jobs_queued=0)
MANIFEST = Manifest.from_json({**SUMMARY.__dict__, "version": 2, "classes": [0, 1],
                               "features": ["a"], "dataset": {"path": "spam.csv"}})
DRIFT = DriftReport("spam", 2, replica="r1", status="warn", window_size=100, windows=3,
                    features=[FeatureDrift("a", "psi", 0.2, 0.1, 0.25, "warn")])
ANSWERS: dict[str, Any] = {
    "train": JOB, "get_job": JOB, "cancel_job": JOB,
    "list_jobs": ([JOB], "j0"),
    "status": (INFO, [STATUS]),
    "list_versions": VersionPage([SUMMARY], "next", 2, aliases={"prod": 2, "b": 1}),
    "get_version": VersionDetail(MANIFEST, 1, {"prod": 2}),
    "rollback": RollbackResult("spam", 2, 1), "promote": RollbackResult("spam", 1, 2),
    "predict": (2, Prediction(Task.REGRESSION, [], values=np.array([1.5, 2.5]))),
    "reload": [STATUS],
    "get_policy": Policy("f1", 0.01), "set_policy": Policy("f1", 0.02, disabled=True),
    "set_alias": AliasView("spam", "prod", 2), "delete_alias": AliasView("spam", "prod", 0),
    "set_schedule": SCHEDULE, "get_schedule": SCHEDULE, "delete_schedule": SCHEDULE[0],
    "get_drift": DriftView(DRIFT, 0.25),
}


class Aborted(Exception):
    pass


class Context:
    """What a servicer method uses of grpc.ServicerContext."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None


def servicer(fake: FakeService) -> ModelManagerServicer:
    return ModelManagerServicer(cast(ModelService, fake))


def call(fake: FakeService, method: str, request: Any) -> Any:
    return getattr(servicer(fake), method)(request, Context())


class TestOneCallEach:
    def test_get_job_converts_the_record(self) -> None:
        fake = FakeService()
        job = call(fake, "GetJob", pb.GetJobRequest(job_id="j1"))
        assert fake.calls == [("get_job", ("j1",), {})]
        assert (job.id, job.model, job.state, job.phase, job.progress) == (
            "j1", "spam", pb.JOB_STATE_RUNNING, "fit", 0.5)
        assert job.request.dataset.target == "is_spam"
        assert job.created_at.seconds == 10

    def test_train_passes_the_converted_request_and_a_waiting_check(self) -> None:
        fake = FakeService()
        job = call(fake, "Train", pb.TrainRequest(model="spam", algorithm="xgboost",
                                                  dataset=pb.Dataset(path="spam.csv"), seed=7))
        [(name, (request,), kwargs)] = fake.calls
        assert (name, request.model, request.algorithm, request.seed) == (
            "train", "spam", "xgboost", 7)
        assert request.dataset.path == "spam.csv"
        assert kwargs["wanted"]() is True
        assert job.id == "j1"

    def test_watch_job_streams_one_event_per_record(self) -> None:
        events = list(call(FakeService(), "WatchJob", pb.WatchJobRequest(job_id="j1")))
        assert [(e.job.state, e.job.version) for e in events] == [
            (pb.JOB_STATE_RUNNING, 0), (pb.JOB_STATE_SUCCEEDED, 2)]

    def test_list_jobs_carries_the_next_token(self) -> None:
        fake = FakeService()
        response = call(fake, "ListJobs", pb.ListJobsRequest(model="spam", page_size=3,
                                                             page_token="t"))
        assert fake.calls == [("list_jobs", ("spam", 3, "t"), {})]
        assert ([j.id for j in response.jobs], response.next_page_token) == (["j1"], "j0")

    def test_get_status_converts_the_ready_made_views(self) -> None:
        response = call(FakeService(), "GetStatus", pb.GetStatusRequest(model="spam"))
        assert (response.daemon.registry_root, response.daemon.jobs_running) == ("/r", 1)
        [model] = response.models
        assert (model.model, model.active_version, model.loaded_version, model.state) == (
            "spam", 2, 2, pb.LOAD_STATE_READY)
        assert (model.latest_version, model.version_count, dict(model.aliases)) == (
            2, 2, {"prod": 2})
        assert (model.algorithm, model.metrics["f1"].mean, model.drift_status) == (
            "xgboost", 0.9, "ok")
        assert (model.schedule.interval_seconds, model.schedule.last_outcome) == (
            60.0, "queued j1")

    def test_reload_answers_the_same_model_messages(self) -> None:
        response = call(FakeService(), "Reload", pb.ReloadRequest(model="spam"))
        assert [m.model for m in response.models] == ["spam"]
        assert response.models[0].aliases["prod"] == 2

    def test_list_versions_marks_state_and_aliases_from_the_page(self) -> None:
        fake = FakeService()
        response = call(fake, "ListVersions", pb.ListVersionsRequest(
            model="spam", page_size=5, state=pb.VERSION_STATE_ACTIVE))
        assert fake.calls == [("list_versions", ("spam", 5, "", "active"), {})]
        [version] = response.versions
        assert (version.version, version.state, list(version.aliases)) == (
            2, pb.VERSION_STATE_ACTIVE, ["prod"])
        assert (response.next_page_token, response.active_version) == ("next", 2)

    def test_list_versions_refuses_an_unknown_state_before_calling(self) -> None:
        fake, context = FakeService(), Context()
        with pytest.raises(Aborted):
            servicer(fake).ListVersions(pb.ListVersionsRequest(model="spam", state=9), context)
        assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT,
                                   "state 9 is not a known VersionState value")
        assert fake.calls == []

    def test_get_version_carries_the_manifest_and_aliases(self) -> None:
        version = call(FakeService(), "GetVersion", pb.GetVersionRequest(model="spam"))
        assert (version.version, version.state, list(version.aliases)) == (
            2, pb.VERSION_STATE_INACTIVE, ["prod"])
        assert '"algorithm": "xgboost"' in version.manifest_json

    def test_rollback_and_promote(self) -> None:
        fake = FakeService()
        back = call(fake, "Rollback", pb.RollbackRequest(model="spam", to_version=1,
                                                         reason="bad", dry_run=True))
        up = call(fake, "Promote", pb.PromoteRequest(model="spam", version=2, reason="ok",
                                                     expected_active_version=1))
        assert fake.calls == [("rollback", ("spam", 1, "bad", 0, True), {}),
                              ("promote", ("spam", 2, "ok", 1), {})]
        assert (back.previous_version, back.active_version) == (2, 1)
        assert (up.previous_version, up.active_version) == (1, 2)

    def test_policies(self) -> None:
        fake = FakeService()
        got = call(fake, "GetPolicy", pb.GetPolicyRequest(model="spam"))
        policy = pb.Policy(model="spam", primary_metric="f1", tolerance=0.02, disabled=True)
        set_ = call(fake, "SetPolicy", pb.SetPolicyRequest(policy=policy))
        assert fake.calls[0] == ("get_policy", ("spam",), {})
        assert fake.calls[1][1][0] == "spam"
        assert fake.calls[1][1][1] == Policy("f1", 0.02, disabled=True)
        assert (got.model, got.primary_metric, got.tolerance) == ("spam", "f1", 0.01)
        assert (set_.model, set_.disabled) == ("spam", True)


class TestPredict:
    def test_dense_rows_reach_the_service_as_dense_rows(self) -> None:
        fake = FakeService()
        request = pb.PredictRequest(model="spam", alias="prod", explain=True,
                                    ignore_extra_columns=True,
                                    dense=pb.DenseRows(columns=["a", "b"],
                                                       values=[1.0, 2.0, 3.0, 4.0]))
        response = call(fake, "Predict", request)
        [(name, (model, version, alias, rows), kwargs)] = fake.calls
        assert (name, model, version, alias) == ("predict", "spam", 0, "prod")
        assert kwargs == {"ignore_extra_columns": True, "explain": True}
        assert isinstance(rows, DenseRows)
        assert (list(rows.columns), list(rows.values), len(rows)) == (
            ["a", "b"], [1.0, 2.0, 3.0, 4.0], 2)
        assert (response.model, response.version, response.task, list(response.values)) == (
            "spam", 2, pb.TASK_REGRESSION, [1.5, 2.5])

    def test_records_from_the_wire_reach_the_service_as_record_rows(self) -> None:
        fake = FakeService()
        request = pb.PredictRequest(model="spam", version=1)
        request.records.rows.add().update({"a": 1.0, "c": "x"})
        call(fake, "Predict", PredictRequestWire.FromString(request.SerializeToString()))
        [(_, (_, version, _, rows), _)] = fake.calls
        assert version == 1
        assert isinstance(rows, RecordRows)
        assert [dict(r) for r in rows.records] == [{"a": 1.0, "c": "x"}]

    def test_no_rows_is_refused_without_calling_the_service(self) -> None:
        fake, context = FakeService(), Context()
        with pytest.raises(Aborted):
            servicer(fake).Predict(pb.PredictRequest(model="spam"), context)
        assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT,
                                   "rows is required: send records or dense")
        assert fake.calls == []


class TestAliasesSchedulesDrift:
    def test_set_alias_passes_the_guard_only_when_set(self) -> None:
        fake = FakeService()
        alias = call(fake, "SetAlias", pb.SetAliasRequest(model="spam", alias="prod",
                                                          version=2))
        call(fake, "SetAlias", pb.SetAliasRequest(model="spam", alias="prod", version=2,
                                                  expected_version=0))
        assert [c[1] for c in fake.calls] == [("spam", "prod", 2, None), ("spam", "prod", 2, 0)]
        assert (alias.model, alias.alias, alias.version) == ("spam", "prod", 2)

    def test_delete_alias_answers_version_zero(self) -> None:
        fake = FakeService()
        alias = call(fake, "DeleteAlias", pb.DeleteAliasRequest(model="spam", alias="prod",
                                                                expected_version=2))
        assert fake.calls == [("delete_alias", ("spam", "prod", 2), {})]
        assert alias == pb.Alias(model="spam", alias="prod", version=0)

    def test_schedules(self) -> None:
        fake = FakeService()
        train = pb.TrainRequest(model="spam", algorithm="xgboost",
                                dataset=pb.Dataset(path="spam.csv", target="is_spam"))
        set_ = call(fake, "SetSchedule", pb.SetScheduleRequest(schedule=pb.Schedule(
            model="spam", train=train, interval_seconds=60.0, min_interval_seconds=30.0,
            on_drift=True)))
        got = call(fake, "GetSchedule", pb.GetScheduleRequest(model="spam"))
        deleted = call(fake, "DeleteSchedule", pb.DeleteScheduleRequest(model="spam"))
        name, args, kwargs = fake.calls[0]
        assert (name, args[0], args[1].model, args[2:], kwargs) == (
            "set_schedule", "spam", "spam", ("", 60.0, 0, 30.0), {"on_drift": True})
        assert set_ == got
        assert (got.next_run_at.seconds, got.train.dataset.target) == (100, "is_spam")
        assert deleted == pb.Schedule(model="spam", interval_seconds=60.0)

    def test_get_drift_carries_the_sample_rate(self) -> None:
        report = call(FakeService(), "GetDrift", pb.GetDriftRequest(model="spam"))
        assert (report.model, report.version, report.status, report.sample_rate) == (
            "spam", 2, "warn", 0.25)
        assert [(f.feature, f.value, f.status) for f in report.features] == [
            ("a", 0.2, "warn")]


@pytest.mark.parametrize(("error", "code"), [
    (NotFound("model 'x' not found"), grpc.StatusCode.NOT_FOUND),
    (InvalidArgument("page_size must be between 0 and 1000, got 5000"),
     grpc.StatusCode.INVALID_ARGUMENT),
    (FailedPrecondition("version 2 of model 'spam' is already active"),
     grpc.StatusCode.FAILED_PRECONDITION),
])
@pytest.mark.parametrize(("method", "request_"), [
    ("GetStatus", pb.GetStatusRequest(model="x")),
    ("ListVersions", pb.ListVersionsRequest(model="x")),
    ("Predict", pb.PredictRequest(model="x", dense=pb.DenseRows(columns=["a"], values=[1]))),
    ("SetAlias", pb.SetAliasRequest(model="x", alias="a", version=1)),
    ("DeleteSchedule", pb.DeleteScheduleRequest(model="x")),
    ("GetDrift", pb.GetDriftRequest(model="x")),
])
def test_the_services_errors_reach_the_caller_as_they_are(
        method: str, request_: Any, error: Exception, code: grpc.StatusCode) -> None:
    context = Context()
    with pytest.raises(Aborted):
        getattr(servicer(FakeService(fail=error)), method)(request_, context)
    assert context.aborted == (code, str(error))


def test_an_unexpected_error_is_internal_with_a_generic_message() -> None:
    context = Context()
    with pytest.raises(Aborted):
        servicer(FakeService(fail=KeyError("x"))).GetJob(pb.GetJobRequest(job_id="j"), context)
    assert context.aborted == (grpc.StatusCode.INTERNAL,
                               "internal error; the daemon log has the details")
