"""How each result looks as text: one function per kind of result, no I/O besides Output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from modeld._cli.output import Output, fmt_time, key_metric
from modeld._predict import Predictions
from modeld.lifecycle import Policy, Schedule
from modeld.status import ModelStatus, Status
from modeld.types import Job, JobState, LoadState, Metric, Version, VersionState
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["show_drift", "show_explanations", "show_importance", "show_jobs", "show_metrics",
           "show_models",
           "show_policy", "show_predictions", "show_schedule", "show_status", "show_version",
           "show_versions",
           "show_warnings"]

_LOAD_STYLE = {LoadState.READY: "green", LoadState.LOADING: "yellow", LoadState.STALE: "yellow",
               LoadState.FAILED: "bold red", LoadState.NO_ACTIVE_VERSION: "dim",
               LoadState.DEGRADED: "bold yellow"}
_VERSION_STYLE = {VersionState.ACTIVE: "green", VersionState.REJECTED: "red"}
_JOB_STYLE = {JobState.SUCCEEDED: "green", JobState.RUNNING: "cyan", JobState.QUEUED: "yellow",
              JobState.FAILED: "bold red", JobState.CANCELLED: "dim"}


def _styled(text: str, style: str) -> Text:
    return Text(text, style=style)


def _version(number: int) -> str:
    return f"v{number}" if number else "-"


def show_status(out: Output, status: Status) -> None:
    """The daemon's line, then a table of models (failures in red on a terminal)."""
    d = status.daemon
    out.result(Text(
        f"modeld {d.build_version} · up {_duration(d.uptime_seconds)} · "
        f"jobs {d.jobs_running} running, {d.jobs_queued} queued · registry {d.registry_root}"))
    if status.models:
        show_models(out, status.models)
        show_warnings(out, status.models)
    else:
        out.info("no models yet: train one with `modelctl train`")


def show_warnings(out: Output, models: Sequence[ModelStatus]) -> None:
    """Freshness warnings under the table, one line each ('!' marks the model above)."""
    for m in models:
        for w in m.warnings:
            out.result(Text(f"! {m.model} v{m.active_version}: {w.message} [{w.kind}]",
                            style="yellow"))


def show_models(out: Output, models: Sequence[ModelStatus]) -> None:
    """One row per model: active and loaded versions, load state, key metric, this daemon's
    drift status, last error;
    '!' after the model's name when it has freshness warnings."""
    rows = [[
        m.model + (" !" if m.warnings else ""), _version(m.active_version),
        _version(m.loaded_version),
        _styled(m.state.value, _LOAD_STYLE.get(m.state, "")), m.algorithm or "-",
        key_metric(m.metrics) or "-", str(m.version_count),
        _styled(m.drift_status or "-", _DRIFT_STYLE.get(m.drift_status, "")),
        _styled(m.last_error, "red") if m.last_error else "",
    ] for m in models]
    out.result(out.table(["MODEL", "ACTIVE", "LOADED", "STATE", "ALGORITHM", "KEY METRIC",
                          "VERSIONS", "DRIFT", "LAST ERROR"], rows))


def show_versions(out: Output, model: str, versions: Sequence[Version]) -> None:
    """Newest first, the active one marked with * (and bold on a terminal)."""
    rows = [[
        "*" if v.active else "", _styled(str(v.version), "bold" if v.active else ""),
        _styled(v.state.value, _VERSION_STYLE.get(v.state, "")), fmt_time(v.created_at),
        v.algorithm, key_metric(v.metrics) or "-", str(v.rows), ",".join(v.aliases),
    ] for v in versions]
    out.result(out.table(["", "VERSION", "STATE", "CREATED", "ALGORITHM", "KEY METRIC", "ROWS",
                          "ALIASES"], rows, title=f"{model}: {len(versions)} version(s)"))


def show_version(out: Output, v: Version) -> None:
    """One version: its facts, metrics, params and confusion matrix."""
    _facts(out, [
        ("model", v.model), ("version", f"{v.version} ({v.state.value})"),
        ("task", v.task.value), ("algorithm", v.algorithm), ("created", fmt_time(v.created_at)),
        ("job", v.job_id), ("dataset", f"{v.dataset_path} ({v.rows} rows)"),
        ("sha256", v.dataset_sha256), ("features", f"{len(v.features)}: "
                                                  + ", ".join(v.features[:8])
                                                  + (", ..." if len(v.features) > 8 else "")),
        ("classes", ", ".join(v.classes) or "-"),
        ("training", f"{v.training_seconds:.2f} s"),
        ("params", ", ".join(f"{k}={p}" for k, p in v.params.items()) or "(defaults)"),
        ("aliases", ", ".join(v.aliases) or "-"), ("gate", v.gate_summary or "-"),
    ])
    show_metrics(out, v.metrics)
    if v.confusion_matrix is not None:
        cm = v.confusion_matrix
        rows = [[label, *(str(c) for c in counts)] for label, counts in zip(
            cm.labels, cm.counts, strict=True)]
        out.result(out.table(["true \\ predicted", *cm.labels], rows,
                             title="confusion matrix (summed over folds)"))
    show_importance(out, (v.manifest or {}).get("feature_importance"))


def show_importance(out: Output, found: Mapping[str, Any] | None, top: int = 10) -> None:
    """The `top` features by permutation importance (else the estimator's), both shown."""
    if not found:
        return
    own = found.get("estimator") or {}
    permutation = found.get("permutation") or {}
    drops = permutation.get("drop") or {}
    ranked = sorted(drops or own, key=lambda name: -(drops or own)[name])[:top]
    if not ranked:
        return
    metric = permutation.get("metric", "")
    rows = [[name, f"{own[name]:.3f}" if name in own else "-",
             f"{drops[name]:+.4f}" if name in drops else "-"] for name in ranked]
    title = (f"feature importance (top {len(ranked)}; permutation: {metric} drop on "
             f"{permutation.get('rows', 0)} held-out rows x {permutation.get('repeats', 0)})"
             if drops else f"feature importance (top {len(ranked)})")
    out.result(out.table(["FEATURE", "ESTIMATOR", f"PERMUTATION ({metric or '-'})"], rows,
                         title=title))


def show_metrics(out: Output, metrics: Mapping[str, Metric]) -> None:
    """Cross-validated metrics: mean, std and each fold."""
    if not metrics:
        return
    rows = [[name, f"{m.mean:.4f}", f"{m.std:.4f}", " ".join(f"{f:.3f}" for f in m.folds)]
            for name, m in metrics.items()]
    out.result(out.table(["METRIC", "MEAN", "STD", "FOLDS"], rows,
                         title="cross-validated metrics"))


def show_jobs(out: Output, jobs: Sequence[Job]) -> None:
    """Newest first: state, phase, progress and the version each job published."""
    rows = [[
        j.id, j.model, _styled(j.state.value, _JOB_STYLE.get(j.state, "")), j.phase,
        f"{j.progress:.0%}", _version(j.version), fmt_time(j.created_at),
        _styled(j.error, "red") if j.error else j.message,
    ] for j in jobs]
    out.result(out.table(["JOB", "MODEL", "STATE", "PHASE", "PROGRESS", "VERSION", "CREATED",
                          "MESSAGE"], rows))


def show_predictions(out: Output, p: Predictions) -> None:
    """One row per input row, in order, with the predicted class's probability or the score."""
    header = ["ROW", "PREDICTION"]
    if p.probabilities:
        header.append("PROBABILITY")
    if p.anomaly_scores:
        header.append("SCORE")
    rows = []
    for i, record in enumerate(p.records()):
        row = [str(i), _plain(record["prediction"])]
        if "probabilities" in record:
            row.append(f"{record['probabilities'].get(record['prediction'], 0.0):.4f}")
        if "anomaly_score" in record:
            row.append(f"{record['anomaly_score']:.4f}")
        rows.append(row)
    out.result(out.table(header, rows, title=f"{p.model} v{p.version} ({p.task.value})"))


def show_explanations(out: Output, p: Predictions, top: int = 5) -> None:
    """Each row's largest feature contributions to its margin, and base + sum = margin."""
    rows = []
    for i, e in enumerate(p.explanations):
        parts = ", ".join(f"{name} {value:+.4f}" for name, value in e.top(top))
        rows.append([str(i), e.class_label or "-", f"{e.margin:.4f}", f"{e.base_value:.4f}",
                     parts])
    out.result(out.table(["ROW", "CLASS", "MARGIN", "BASE", f"TOP {top} CONTRIBUTIONS"], rows,
                         title="explanations: base + contributions = margin"))


def show_policy(out: Output, p: Policy) -> None:
    """The quality gate: primary metric, tolerance, thresholds, on or off."""
    _facts(out, [
        ("model", p.model), ("gate", "off" if p.disabled else "on"),
        ("primary metric", p.primary_metric or "(the task's default)"),
        ("tolerance", "(daemon default)" if p.tolerance is None else f"{p.tolerance:g}"),
        ("thresholds", ", ".join(str(t) for t in p.thresholds) or "-"),
        ("max age", _duration(p.max_age_seconds) if p.max_age_seconds else "-"),
        ("min rows", str(p.min_training_rows) if p.min_training_rows else "-"),
        ("drift", f"PSI warn {p.drift_psi_warn or 0.1:g}, alert {p.drift_psi_alert or 0.25:g}; "
                  f"JS alert {p.drift_js_alert or 0.1:g}; share alert "
                  f"{p.drift_share_alert or 0.5:g}"),
        ("sampling", "(daemon default)" if p.monitor_sample is None
         else f"{p.monitor_sample:.0%} of Predict rows"),
    ])


def show_drift(out: Output, r: pb.DriftReport) -> None:
    """The model's drift status, then one row per feature (alerts first)."""
    out.result(Text(
        f"{r.model} v{r.version} on {r.replica}: {r.status} · window {r.window_rows}/"
        f"{r.window_size} rows · {r.windows} window(s) · sampled {r.sampled_rows} "
        f"({r.sample_rate:.0%}), dropped {r.dropped_rows} · drifted share "
        f"{r.drifted_share:.0%} (alert at {r.share_threshold:.0%})",
        style=_DRIFT_STYLE.get(r.status, "")))
    every = [*r.features, *([r.prediction] if r.HasField("prediction") else [])]
    order = {"alert": 0, "warn": 1, "ok": 2}
    rows = [[f.feature, f.metric, f"{f.value:.4f}", f"{f.warn_threshold:g}",
             f"{f.alert_threshold:g}", _styled(f.status, _DRIFT_STYLE.get(f.status, ""))]
            for f in sorted(every, key=lambda f: (order.get(f.status, 3), -f.value))]
    if rows:
        out.result(out.table(["FEATURE", "METRIC", "VALUE", "WARN", "ALERT", "STATUS"], rows))


_DRIFT_STYLE = {"alert": "bold red", "warn": "yellow", "ok": "green"}


def show_schedule(out: Output, s: Schedule) -> None:
    """When the model retrains, what each run trains, and how the last run went."""
    t = s.train
    _facts(out, [
        ("model", s.model), ("cron", s.cron or "-"),
        ("every", f"{s.interval_seconds:g} s" if s.interval_seconds else "-"),
        ("new rows", str(s.min_new_rows) if s.min_new_rows else "-"),
        ("on drift", "yes" if s.on_drift else "-"),
        ("min interval", f"{s.min_interval_seconds:g} s" if s.min_interval_seconds else "-"),
        ("trains", f"{t.algorithm} on {t.data}" + (f" -> {t.target}" if t.target else "")),
        ("next run", fmt_time(s.next_run_at)), ("last run", fmt_time(s.last_run_at)),
        ("last outcome", s.last_outcome or "-"),
    ])


def _facts(out: Output, pairs: Sequence[tuple[str, str]]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in pairs:
        grid.add_row(name, escape(value))
    out.result(grid)


def _plain(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"

