"""ModelManager over gRPC: convert the request, call the service once, convert the reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server.errors import InvalidArgument
from modeld_server.rpc import convert
from modeld_server.rpc.status import rpc
from modeld_server.service import ModelService
from modeld_server.serving.manager import ModelView

Ctx: TypeAlias = grpc.ServicerContext


class ModelManagerServicer(pb_grpc.ModelManagerServicer):
    """The thin edge: no rules, locks or file I/O live here."""

    def __init__(self, service: ModelService) -> None:
        self._service = service

    @rpc
    def Train(self, request: pb.TrainRequest, context: Ctx) -> pb.Job:
        return convert.job_to_pb(self._service.train(convert.train_input(request),
                                                     wanted=lambda: _waiting(context)))

    @rpc
    def WatchJob(self, request: pb.WatchJobRequest, context: Ctx) -> Iterator[pb.JobEvent]:
        for record in self._service.watch_job(request.job_id):
            yield pb.JobEvent(job=convert.job_to_pb(record))

    @rpc
    def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.Job:
        return convert.job_to_pb(self._service.get_job(request.job_id))

    @rpc
    def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.Job:
        return convert.job_to_pb(self._service.cancel_job(request.job_id))

    @rpc
    def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        jobs, token = self._service.list_jobs(request.model, request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[convert.job_to_pb(j) for j in jobs], next_page_token=token)

    @rpc
    def GetStatus(self, request: pb.GetStatusRequest, context: Ctx) -> pb.GetStatusResponse:
        info, views = self._service.status(request.model)
        return pb.GetStatusResponse(daemon=convert.daemon_to_pb(info),
                                    models=[self._model_status(v) for v in views])

    @rpc
    def ListVersions(self, request: pb.ListVersionsRequest,
                     context: Ctx) -> pb.ListVersionsResponse:
        state = convert.VERSION_STATE_FROM_PB.get(request.state)
        if state is None:
            raise InvalidArgument(f"state {request.state} is not a known VersionState value")
        page = self._service.list_versions(request.model, request.page_size, request.page_token,
                                           state)
        aliases = self._service.lifecycle.aliases(request.model)
        return convert.versions_to_pb(request.model, page, aliases)

    @rpc
    def GetVersion(self, request: pb.GetVersionRequest, context: Ctx) -> pb.Version:
        manifest, active = self._service.get_version(request.model, request.version)
        return convert.version_to_pb(request.model, manifest.summary, active,
                                     self._service.lifecycle.aliases(request.model), manifest)

    @rpc
    def Rollback(self, request: pb.RollbackRequest, context: Ctx) -> pb.RollbackResponse:
        return convert.rollback_to_pb(self._service.rollback(
            request.model, request.to_version, request.reason, request.expected_active_version,
            request.dry_run))

    @rpc
    def Predict(self, request: pb.PredictRequest, context: Ctx) -> pb.PredictResponse:
        # From the network `request` is a PredictRequestWire: records arrive as bytes.
        kind = request.WhichOneof("rows")
        pinned = self._service.pick_version(request.model, request.version, request.alias)
        if kind == "dense":
            version, prediction = self._service.predict_dense(
                request.model, pinned, request.dense.columns, request.dense.values,
                request.ignore_extra_columns, explain=request.explain)
        elif kind == "records":
            version, prediction = self._service.predict_records(
                request.model, pinned, convert.records_from_pb(request.records),
                request.ignore_extra_columns, explain=request.explain)
        else:
            raise InvalidArgument("rows is required: send records or dense")
        return convert.prediction_to_pb(request.model, version, prediction)

    @rpc
    def Reload(self, request: pb.ReloadRequest, context: Ctx) -> pb.ReloadResponse:
        views = self._service.reload(request.model)
        return pb.ReloadResponse(models=[self._model_status(v) for v in views])

    @rpc
    def Promote(self, request: pb.PromoteRequest, context: Ctx) -> pb.RollbackResponse:
        return convert.rollback_to_pb(self._service.lifecycle.promote(
            request.model, request.version, request.reason, request.expected_active_version))

    @rpc
    def GetPolicy(self, request: pb.GetPolicyRequest, context: Ctx) -> pb.Policy:
        policy = self._service.lifecycle.get_policy(request.model)
        return convert.policy_to_pb(request.model, policy)

    @rpc
    def SetPolicy(self, request: pb.SetPolicyRequest, context: Ctx) -> pb.Policy:
        model = request.policy.model
        policy = self._service.lifecycle.set_policy(model, convert.policy_from_pb(request.policy))
        return convert.policy_to_pb(model, policy)

    @rpc
    def SetAlias(self, request: pb.SetAliasRequest, context: Ctx) -> pb.Alias:
        expected = request.expected_version if request.HasField("expected_version") else None
        version = self._service.lifecycle.set_alias(request.model, request.alias,
                                                    request.version, expected)
        return pb.Alias(model=request.model, alias=request.alias, version=version)

    @rpc
    def DeleteAlias(self, request: pb.DeleteAliasRequest, context: Ctx) -> pb.Alias:
        expected = request.expected_version if request.HasField("expected_version") else None
        self._service.lifecycle.delete_alias(request.model, request.alias, expected)
        return pb.Alias(model=request.model, alias=request.alias, version=0)

    @rpc
    def SetSchedule(self, request: pb.SetScheduleRequest, context: Ctx) -> pb.Schedule:
        s = request.schedule
        spec, state = self._service.set_schedule(
            s.model, convert.train_input(s.train), s.cron, s.interval_seconds, s.min_new_rows,
            s.min_interval_seconds, on_drift=s.on_drift)
        return convert.schedule_to_pb(spec, state)

    @rpc
    def GetSchedule(self, request: pb.GetScheduleRequest, context: Ctx) -> pb.Schedule:
        return convert.schedule_to_pb(*self._service.get_schedule(request.model))

    @rpc
    def DeleteSchedule(self, request: pb.DeleteScheduleRequest, context: Ctx) -> pb.Schedule:
        spec = self._service.delete_schedule(request.model)
        return pb.Schedule(model=spec.model, cron=spec.cron,
                           interval_seconds=spec.interval_seconds,
                           min_new_rows=spec.min_new_rows, on_drift=spec.on_drift)

    @rpc
    def GetDrift(self, request: pb.GetDriftRequest, context: Ctx) -> pb.DriftReport:
        return convert.drift_to_pb(self._service.get_drift(request.model),
                                   self._service.monitor.rate_of(request.model))

    def _model_status(self, view: ModelView) -> pb.ModelStatus:
        entry = self._service.index.entry(view.model)
        summary = entry.summaries.get(view.active)
        return convert.model_view_to_pb(view, summary, entry.versions,
                                        self._service.lifecycle.aliases(view.model),
                                        self._service.schedule_of(view.model),
                                        self._service.warnings_of(view.model, summary),
                                        self._service.drift_status(view.model, view.loaded))


def _waiting(context: Ctx) -> bool:
    """Whether the caller still waits: the call is live and its deadline has not passed."""
    left = context.time_remaining()
    return context.is_active() and (left is None or left > 0)
