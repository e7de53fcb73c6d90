"""ModelManager over gRPC: convert the request, call the service once, convert the reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server.rpc import convert
from modeld_server.rpc.status import rpc
from modeld_server.service import ModelService

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
            yield convert.job_event_to_pb(record)

    @rpc
    def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.Job:
        return convert.job_to_pb(self._service.get_job(request.job_id))

    @rpc
    def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.Job:
        return convert.job_to_pb(self._service.cancel_job(request.job_id))

    @rpc
    def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        return convert.jobs_to_pb(*self._service.list_jobs(request.model, request.page_size,
                                                           request.page_token))

    @rpc
    def GetStatus(self, request: pb.GetStatusRequest, context: Ctx) -> pb.GetStatusResponse:
        return convert.status_to_pb(*self._service.status(request.model))

    @rpc
    def ListVersions(self, request: pb.ListVersionsRequest,
                     context: Ctx) -> pb.ListVersionsResponse:
        state = convert.version_state_from_pb(request.state)
        return convert.versions_to_pb(request.model, self._service.list_versions(
            request.model, request.page_size, request.page_token, state))

    @rpc
    def GetVersion(self, request: pb.GetVersionRequest, context: Ctx) -> pb.Version:
        return convert.version_detail_to_pb(
            request.model, self._service.get_version(request.model, request.version))

    @rpc
    def Rollback(self, request: pb.RollbackRequest, context: Ctx) -> pb.RollbackResponse:
        return convert.rollback_to_pb(self._service.rollback(
            request.model, request.to_version, request.reason, request.expected_active_version,
            request.dry_run))

    @rpc
    def Predict(self, request: pb.PredictRequest, context: Ctx) -> pb.PredictResponse:
        # From the network `request` is a PredictRequestWire: records arrive as bytes.
        rows = convert.rows_from_pb(request)
        version, prediction = self._service.predict(
            request.model, request.version, request.alias, rows,
            ignore_extra_columns=request.ignore_extra_columns, explain=request.explain)
        return convert.prediction_to_pb(request.model, version, prediction)

    @rpc
    def Reload(self, request: pb.ReloadRequest, context: Ctx) -> pb.ReloadResponse:
        return convert.reload_to_pb(self._service.reload(request.model))

    @rpc
    def Promote(self, request: pb.PromoteRequest, context: Ctx) -> pb.RollbackResponse:
        return convert.rollback_to_pb(self._service.promote(
            request.model, request.version, request.reason, request.expected_active_version))

    @rpc
    def GetPolicy(self, request: pb.GetPolicyRequest, context: Ctx) -> pb.Policy:
        return convert.policy_to_pb(request.model, self._service.get_policy(request.model))

    @rpc
    def SetPolicy(self, request: pb.SetPolicyRequest, context: Ctx) -> pb.Policy:
        model = request.policy.model
        return convert.policy_to_pb(
            model, self._service.set_policy(model, convert.policy_from_pb(request.policy)))

    @rpc
    def SetAlias(self, request: pb.SetAliasRequest, context: Ctx) -> pb.Alias:
        return convert.alias_to_pb(self._service.set_alias(
            request.model, request.alias, request.version, convert.expected_version(request)))

    @rpc
    def DeleteAlias(self, request: pb.DeleteAliasRequest, context: Ctx) -> pb.Alias:
        return convert.alias_to_pb(self._service.delete_alias(
            request.model, request.alias, convert.expected_version(request)))

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
        return convert.deleted_schedule_to_pb(self._service.delete_schedule(request.model))

    @rpc
    def GetDrift(self, request: pb.GetDriftRequest, context: Ctx) -> pb.DriftReport:
        return convert.drift_to_pb(self._service.get_drift(request.model))


def _waiting(context: Ctx) -> bool:
    """Whether the caller still waits: the call is live and its deadline has not passed."""
    left = context.time_remaining()
    return context.is_active() and (left is None or left > 0)
