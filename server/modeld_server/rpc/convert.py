"""Messages <-> domain values. No rules, no I/O: just shapes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.errors import InvalidArgument
from modeld_server.monitoring.report import FeatureDrift
from modeld_server.pages import version_state
from modeld_server.registry.manifest import Manifest, VersionSummary
from modeld_server.rpc import dense_wire
from modeld_server.rpc.struct_rows import StructRows
from modeld_server.serving.explain import Explanations
from modeld_server.serving.loaded import Prediction
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
    TrainInput,
    VersionPage,
)
from modeld_server.views import (
    AliasView,
    DenseRows,
    DriftView,
    ModelStatus,
    RecordRows,
    Rows,
    VersionDetail,
)

TASK_TO_PB = {
    Task.CLASSIFICATION: pb.TASK_CLASSIFICATION,
    Task.REGRESSION: pb.TASK_REGRESSION,
    Task.ANOMALY_DETECTION: pb.TASK_ANOMALY_DETECTION,
}
TASK_FROM_PB = {v: k for k, v in TASK_TO_PB.items()}
JOB_STATE_TO_PB = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
LOAD_STATE_TO_PB = {
    LoadState.LOADING: pb.LOAD_STATE_LOADING,
    LoadState.READY: pb.LOAD_STATE_READY,
    LoadState.FAILED: pb.LOAD_STATE_FAILED,
    LoadState.NO_ACTIVE_VERSION: pb.LOAD_STATE_NO_ACTIVE_VERSION,
    LoadState.STALE: pb.LOAD_STATE_STALE,
    LoadState.DEGRADED: pb.LOAD_STATE_DEGRADED,
}
VERSION_STATE_FROM_PB = {
    pb.VERSION_STATE_UNSPECIFIED: "",
    pb.VERSION_STATE_ACTIVE: "active",
    pb.VERSION_STATE_INACTIVE: "inactive",
    pb.VERSION_STATE_REJECTED: "rejected",
}
VERSION_STATE_TO_PB = {v: k for k, v in VERSION_STATE_FROM_PB.items() if v}
CALIBRATION_FROM_PB = {pb.CALIBRATION_NONE: "none", pb.CALIBRATION_SIGMOID: "sigmoid",
                       pb.CALIBRATION_ISOTONIC: "isotonic", pb.CALIBRATION_AUTO: "auto"}
CALIBRATION_TO_PB = {v: k for k, v in CALIBRATION_FROM_PB.items()}


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _iso_timestamp(text: str | None) -> timestamp_pb2.Timestamp | None:
    return _timestamp(datetime.fromisoformat(text).timestamp()) if text else None


def metrics_to_pb(metrics: Mapping[str, Any]) -> dict[str, pb.MetricValue]:
    return {name: pb.MetricValue(mean=m["mean"], std=m["std"], folds=m.get("folds", []))
            for name, m in metrics.items()}


def dataset_from_pb(dataset: pb.Dataset) -> DatasetSpec:
    return DatasetSpec(dataset.path, dataset.target, dataset.eval_label,
                       tuple(dataset.features), tuple(dataset.drop_columns),
                       tuple(_filter_from_pb(f) for f in dataset.filters))


def _filter_from_pb(flt: pb.RowFilter) -> dict[str, Any]:
    kind = flt.WhichOneof("match")
    out: dict[str, Any] = {"column": flt.column}
    if kind == "range":
        out["range"] = {"min": flt.range.min if flt.range.HasField("min") else None,
                        "max": flt.range.max if flt.range.HasField("max") else None}
    elif kind == "values":
        out["values"] = list(flt.values.values)
    elif kind == "dates":
        out["dates"] = {"start": flt.dates.start, "end": flt.dates.end}
    return out


def _filter_to_pb(flt: Mapping[str, Any]) -> pb.RowFilter:
    message = pb.RowFilter(column=flt["column"])
    if "range" in flt:
        message.range.SetInParent()
        for side in ("min", "max"):
            if flt["range"].get(side) is not None:
                setattr(message.range, side, flt["range"][side])
    elif "values" in flt:
        message.values.values.extend(flt["values"])
    elif "dates" in flt:
        message.dates.start, message.dates.end = flt["dates"]["start"], flt["dates"]["end"]
    return message


def validation_from_pb(options: pb.ValidationOptions) -> dict[str, Any]:
    """Only the options the request set (proto3 zero values mean 'default')."""
    out: dict[str, Any] = {}
    if options.drop_duplicates:
        out["drop_duplicates"] = True
    if options.fail_on_missing_target:
        out["fail_on_missing_target"] = True
    if options.min_rows:
        out["min_rows"] = options.min_rows
    if options.HasField("max_malformed_fraction"):
        out["max_malformed_fraction"] = options.max_malformed_fraction
    return out


def train_input(request: pb.TrainRequest) -> TrainInput:
    if request.task not in (pb.TASK_UNSPECIFIED, *TASK_FROM_PB):
        raise InvalidArgument(f"task {request.task} is not a known Task value")
    if request.calibration not in CALIBRATION_FROM_PB:
        raise InvalidArgument(f"calibration {request.calibration} is not a known value")
    return TrainInput(
        model=request.model,
        dataset=dataset_from_pb(request.dataset),
        validation=validation_from_pb(request.validation),
        calibration=CALIBRATION_FROM_PB[request.calibration],
        algorithm=request.algorithm,
        params=dict(request.params),
        cv_folds=request.cv_folds,
        seed=request.seed if request.HasField("seed") else None,
        request_id=request.request_id,
        task=TASK_FROM_PB.get(request.task),
        activate=not request.no_activate,
        engine=request.engine,
    )


def spec_to_pb(record: JobRecord) -> pb.TrainRequest:
    spec = record.spec
    ds = spec.dataset
    validation = pb.ValidationOptions(**spec.validation)
    return pb.TrainRequest(
        model=spec.model,
        dataset=pb.Dataset(path=ds.path, target=ds.target, eval_label=ds.eval_label,
                           features=ds.features, drop_columns=ds.drop_columns,
                           filters=[_filter_to_pb(f) for f in ds.filters]),
        algorithm=spec.algorithm, params=spec.params, cv_folds=spec.cv_folds, seed=spec.seed,
        request_id=spec.request_id, task=TASK_TO_PB[spec.task], no_activate=not spec.activate,
        validation=validation, calibration=CALIBRATION_TO_PB[spec.calibration],
        engine=spec.engine,
    )


def job_to_pb(record: JobRecord) -> pb.Job:
    return pb.Job(
        id=record.id, model=record.model, state=JOB_STATE_TO_PB[record.state],
        version=record.version, phase=record.phase, progress=record.progress,
        message=record.message, error=record.error, metrics=metrics_to_pb(record.metrics),
        request=spec_to_pb(record), created_at=_timestamp(record.created_at),
        started_at=_timestamp(record.started_at), finished_at=_timestamp(record.finished_at),
        activated=record.activated,
    )


def model_status_to_pb(status: ModelStatus) -> pb.ModelStatus:
    view, summary, versions = status.view, status.summary, status.versions
    current = view.current
    message = pb.ModelStatus(
        model=view.model, active_version=view.active, loaded_version=view.loaded,
        state=LOAD_STATE_TO_PB[view.state], last_error=view.error,
        latest_version=versions[-1] if versions else 0, version_count=len(versions),
        aliases=status.aliases,
        warnings=[pb.StatusWarning(kind=w.kind, message=w.message) for w in status.warnings],
        drift_status=status.drift,
    )
    if summary:
        for name, value in metrics_to_pb(summary.metrics).items():
            message.metrics[name].CopyFrom(value)
        message.algorithm = summary.algorithm
        message.task = TASK_TO_PB.get(Task(summary.task), pb.TASK_UNSPECIFIED)
    if status.schedule is not None:
        message.schedule.CopyFrom(schedule_to_pb(*status.schedule))
    if current is not None:
        message.last_reload_at.CopyFrom(_timestamp(current.loaded_at))
        message.last_reload_ms = current.load_ms
    return message


def status_to_pb(info: DaemonInfo, models: Sequence[ModelStatus]) -> pb.GetStatusResponse:
    return pb.GetStatusResponse(daemon=daemon_to_pb(info),
                                models=[model_status_to_pb(m) for m in models])


def reload_to_pb(models: Sequence[ModelStatus]) -> pb.ReloadResponse:
    return pb.ReloadResponse(models=[model_status_to_pb(m) for m in models])


def jobs_to_pb(jobs: Sequence[JobRecord], next_token: str) -> pb.ListJobsResponse:
    return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs], next_page_token=next_token)


def job_event_to_pb(record: JobRecord) -> pb.JobEvent:
    return pb.JobEvent(job=job_to_pb(record))


def daemon_to_pb(info: DaemonInfo) -> pb.DaemonStatus:
    return pb.DaemonStatus(
        build_version=info.build_version, uptime_seconds=info.uptime_seconds,
        registry_root=info.registry_root, data_root=info.data_root,
        jobs_running=info.jobs_running, jobs_queued=info.jobs_queued,
        started_at=_timestamp(info.started_at),
    )


def version_to_pb(model: str, summary: VersionSummary, active: int,
                  aliases: Mapping[str, int], manifest: Manifest | None = None) -> pb.Version:
    """A version's message; with its `manifest`, the whole manifest.json as read."""
    number = summary.version
    dataset = summary.dataset
    gate = summary.gate or {}
    message = pb.Version(
        model=model, version=number,
        state=VERSION_STATE_TO_PB[version_state(summary, active)],
        aliases=sorted(a for a, v in aliases.items() if v == number),
        gate_summary=(("passed: " if gate.get("passed") else "rejected: ")
                      + "; ".join(gate.get("reasons", []))) if gate else "",
        algorithm=summary.algorithm,
        task=TASK_TO_PB.get(Task(summary.task), pb.TASK_UNSPECIFIED),
        params=summary.params, metrics=metrics_to_pb(summary.metrics),
        created_at=_iso_timestamp(summary.created_at), job_id=summary.job_id,
        dataset_path=dataset.get("path", ""), dataset_sha256=dataset.get("sha256", ""),
        rows=dataset.get("rows", 0), features=summary.features,
        classes=[str(c) for c in summary.classes],
        training_seconds=summary.timings.get("total_seconds", 0.0),
    )
    confusion = summary.confusion_matrix
    if confusion:
        message.confusion_matrix.labels.extend(confusion["labels"])
        message.confusion_matrix.counts.extend(confusion["counts"])
    if manifest is not None:
        # The JSON as read, not as typed: keys a newer writer added reach the client too.
        message.manifest_json = json.dumps(manifest.raw, indent=2, sort_keys=True)
    return message


def version_detail_to_pb(model: str, detail: VersionDetail) -> pb.Version:
    """GetVersion's message: the version with its whole manifest."""
    return version_to_pb(model, detail.manifest.summary, detail.active, detail.aliases,
                         detail.manifest)


def version_state_from_pb(state: int) -> str:
    """ListVersions' state filter ("" for any)."""
    known = VERSION_STATE_FROM_PB.get(pb.VersionState.ValueType(state))
    if known is None:
        raise InvalidArgument(f"state {state} is not a known VersionState value")
    return known


def versions_to_pb(model: str, page: VersionPage) -> pb.ListVersionsResponse:
    """ListVersions' page: each version's message is built once and kept by the page's
    `encoded` (the index), then given its state and aliases, which change."""
    response = pb.ListVersionsResponse(next_page_token=page.next_token,
                                       active_version=page.active)
    aliases = page.aliases
    for summary in page.versions:
        number = summary.version
        message = response.versions.add()
        message.MergeFromString(page.encoded(model, summary, _builder(model, summary)))
        message.state = VERSION_STATE_TO_PB[version_state(summary, page.active)]
        message.aliases.extend(sorted(a for a, v in aliases.items() if v == number))
    return response


def _builder(model: str, summary: VersionSummary) -> Callable[[], bytes]:
    """How a version's message (state and aliases left out) is made, when it is not kept."""
    return lambda: version_to_pb(model, summary, 0, {}).SerializeToString()


def rollback_to_pb(result: RollbackResult) -> pb.RollbackResponse:
    return pb.RollbackResponse(model=result.model, previous_version=result.previous,
                               active_version=result.active)


def rows_from_pb(request: pb.PredictRequest) -> Rows:
    """Predict's rows in the form they came (records stay bytes until read: struct_rows).

    Raises:
        InvalidArgument: neither form was sent.
    """
    kind = request.WhichOneof("rows")
    if kind == "dense":
        dense = request.dense  # bytes from the network (PredictRequestWire), see dense_wire
        if isinstance(dense, bytes):
            return DenseRows(*dense_wire.dense_rows(dense))
        return DenseRows(dense.columns, dense.values)
    if kind == "records":
        return RecordRows(records_from_pb(request.records))
    raise InvalidArgument("rows is required: send records or dense")


def records_from_pb(records: pb.RecordRows | bytes) -> StructRows:
    """Struct rows as dicts of Python scalars (nested values stay messages and are refused),
    built only if needed: uniform numeric rows are read from their bytes (struct_rows).
    The daemon passes bytes (PredictRequestWire); a RecordRows message works too."""
    return StructRows(records)


def prediction_to_pb(model: str, version: int, p: Prediction) -> pb.PredictResponse:
    response = pb.PredictResponse(model=model, version=version, task=TASK_TO_PB[p.task],
                                  labels=p.labels)
    if p.values is not None:
        response.values.extend(p.values.tolist())
    if p.classes is not None and p.probabilities is not None:
        response.classes.extend(p.classes)
        response.probabilities.extend(p.probabilities.ravel().tolist())
    if p.anomaly_scores is not None:
        response.anomaly_scores.extend(p.anomaly_scores.tolist())
    if p.explanations is not None:
        response.explanations.extend(explanations_to_pb(p.explanations))
    return response


def explanations_to_pb(e: Explanations) -> list[pb.Explanation]:
    return [pb.Explanation(class_label=label, margin=margin, base_value=base,
                           contributions=dict(zip(e.columns, row, strict=True)))
            for label, margin, base, row in zip(e.class_labels, e.margins.tolist(),
                                                e.base.tolist(), e.contributions.tolist(),
                                                strict=True)]


def policy_to_pb(model: str, policy: Policy) -> pb.Policy:
    message = pb.Policy(model=model, primary_metric=policy.primary_metric,
                        tolerance=policy.tolerance, disabled=policy.disabled,
                        thresholds=[pb.Threshold(metric=m, op=op, value=v)
                                    for m, op, v in policy.thresholds],
                        min_training_rows=policy.min_training_rows,
                        drift_psi_warn=policy.drift[0], drift_psi_alert=policy.drift[1],
                        drift_js_alert=policy.drift[2], drift_share_alert=policy.drift[3],
                        dask_above_bytes=policy.dask_above_bytes)
    if policy.monitor_sample is not None:
        message.monitor_sample = policy.monitor_sample
    if policy.max_age_seconds:
        message.max_age.FromNanoseconds(round(policy.max_age_seconds * 1e9))
    return message


def policy_from_pb(message: pb.Policy) -> Policy:
    from modeld_server.training.gate import DEFAULT_TOLERANCE

    return Policy(message.primary_metric,
                  message.tolerance if message.HasField("tolerance") else DEFAULT_TOLERANCE,
                  thresholds=tuple((t.metric, t.op, t.value) for t in message.thresholds),
                  disabled=message.disabled,
                  max_age_seconds=message.max_age.seconds + message.max_age.nanos / 1e9,
                  min_training_rows=message.min_training_rows,
                  drift=(message.drift_psi_warn, message.drift_psi_alert,
                         message.drift_js_alert, message.drift_share_alert),
                  monitor_sample=(message.monitor_sample if message.HasField("monitor_sample")
                                  else None),
                  dask_above_bytes=message.dask_above_bytes)


def schedule_to_pb(spec: ScheduleSpec, state: ScheduleState) -> pb.Schedule:
    from modeld_server.types import TrainSpec

    train = TrainSpec.from_json(spec.train)
    message = pb.Schedule(
        model=spec.model, cron=spec.cron, interval_seconds=spec.interval_seconds,
        min_new_rows=spec.min_new_rows, min_interval_seconds=spec.min_interval_seconds,
        train=spec_to_pb(JobRecord(id="", spec=train)), last_outcome=state.last_outcome,
        on_drift=spec.on_drift,
    )
    if state.next_run_at is not None:
        message.next_run_at.CopyFrom(_timestamp(state.next_run_at))
    if state.last_run_at is not None:
        message.last_run_at.CopyFrom(_timestamp(state.last_run_at))
    return message


def _feature_drift_to_pb(f: FeatureDrift) -> pb.FeatureDrift:
    return pb.FeatureDrift(feature=f.feature, metric=f.metric, value=f.value,
                           warn_threshold=f.warn, alert_threshold=f.alert, status=f.status)


def drift_to_pb(drift: DriftView) -> pb.DriftReport:
    report = drift.report
    message = pb.DriftReport(
        model=report.model, version=report.version, replica=report.replica,
        status=report.status, window_size=report.window_size, window_rows=report.window_rows,
        sampled_rows=report.sampled, dropped_rows=report.dropped, windows=report.windows,
        features=[_feature_drift_to_pb(f) for f in report.features],
        drifted_share=report.drifted_share, share_threshold=report.thresholds.share_alert,
        sample_rate=drift.sample_rate)
    if report.prediction is not None:
        message.prediction.CopyFrom(_feature_drift_to_pb(report.prediction))
    if report.computed_at is not None:
        message.computed_at.CopyFrom(_timestamp(report.computed_at))
    return message


def deleted_schedule_to_pb(spec: ScheduleSpec) -> pb.Schedule:
    """DeleteSchedule's answer: what the schedule was (no training request, no run state)."""
    return pb.Schedule(model=spec.model, cron=spec.cron, interval_seconds=spec.interval_seconds,
                       min_new_rows=spec.min_new_rows, on_drift=spec.on_drift)


def alias_to_pb(alias: AliasView) -> pb.Alias:
    return pb.Alias(model=alias.model, alias=alias.alias, version=alias.version)


def expected_version(request: pb.SetAliasRequest | pb.DeleteAliasRequest) -> int | None:
    """The request's expected_version guard, None when unset."""
    return request.expected_version if request.HasField("expected_version") else None
