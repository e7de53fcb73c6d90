"""modelctl commands for the model lifecycle: `policy`, `alias` and `schedule` groups."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict

from modeld._cli import spec_options as so
from modeld._cli import views
from modeld._cli.app import CalibrationChoice, Model, app
from modeld._cli.session import session
from modeld.lifecycle import Policy, Schedule, thresholds
from modeld.types import to_dict
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["alias_app", "policy_app", "schedule_app"]

policy_app = typer.Typer(help="Show or replace a model's promotion policy (quality gate).",
                         no_args_is_help=True)
alias_app = typer.Typer(help="Point named aliases (e.g. challenger) at versions.",
                        no_args_is_help=True)
schedule_app = typer.Typer(help="Show, set or remove a model's retraining schedule.",
                           no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(alias_app, name="alias")
app.add_typer(schedule_app, name="schedule")

AliasName = Annotated[str, typer.Argument(
    help="The alias: a lowercase letter, then letters, digits, _ or -.", show_default=False)]
Expect = Annotated[int | None, typer.Option(
    "--expect", help="Only if the alias points at this version now (0: only if new).",
    show_default=False)]


@policy_app.command("show")
def policy_show(ctx: typer.Context, model: Model) -> None:
    """Show the policy (the defaults when none was set)."""
    s = session(ctx)
    policy = s.client().get_policy(model)
    if s.out.as_json:
        s.out.json(to_dict(policy))
    else:
        views.show_policy(s.out, policy)


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    model: Model,
    primary_metric: Annotated[str, typer.Option(
        help="Metric champion and challenger are compared on; empty for the task's default.")
    ] = "",
    tolerance: Annotated[float | None, typer.Option(
        help="How much worse than the champion a challenger may be; daemon default if unset.",
        show_default=False)] = None,
    threshold: Annotated[list[str] | None, typer.Option(
        "--threshold", help="A bound every version must meet, e.g. roc_auc>=0.95; repeat.",
        show_default=False)] = None,
    disabled: Annotated[bool, typer.Option("--disabled/--enabled",
                                           help="Turn the gate off or on.")] = False,
    max_age: Annotated[str, typer.Option(
        help="Warn in status when the active version is older, e.g. 30d, 12h, 90m; "
        "0 for no limit.")] = "0",
    min_training_rows: Annotated[int, typer.Option(
        min=0, help="Warn in status when the active version was trained on fewer rows.")] = 0,
    drift_psi_warn: Annotated[float, typer.Option(
        help="Drift: a numeric feature's PSI that warns; 0 = 0.1.")] = 0.0,
    drift_psi_alert: Annotated[float, typer.Option(
        help="Drift: a numeric feature's (or the prediction's) PSI that alerts; 0 = 0.25.")
    ] = 0.0,
    drift_js_alert: Annotated[float, typer.Option(
        help="Drift: a categorical feature's Jensen-Shannon distance that alerts; 0 = 0.1.")
    ] = 0.0,
    drift_share_alert: Annotated[float, typer.Option(
        help="Drift: the model alerts when this share of features drifts; 0 = 0.5.")] = 0.0,
    monitor_sample: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Drift: the share of this model's Predict rows sampled; the "
        "daemon's --monitor-sample if unset.", show_default=False)] = None,
) -> None:
    """Replace the whole policy (unset options take the daemon's defaults)."""
    s = session(ctx)
    try:
        bounds = thresholds(threshold or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--threshold") from None
    try:
        age = parse_duration(max_age)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-age") from None
    policy = s.client().set_policy(Policy(model, primary_metric, tolerance=tolerance,
                                          thresholds=bounds, disabled=disabled,
                                          max_age_seconds=age,
                                          min_training_rows=min_training_rows,
                                          drift_psi_warn=drift_psi_warn,
                                          drift_psi_alert=drift_psi_alert,
                                          drift_js_alert=drift_js_alert,
                                          drift_share_alert=drift_share_alert,
                                          monitor_sample=monitor_sample))
    if s.out.as_json:
        s.out.json(to_dict(policy))
    else:
        views.show_policy(s.out, policy)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in '30d', '12h', '90m', '45s', '2w' or a bare number of seconds.

    Raises:
        ValueError: anything else, or a negative duration.
    """
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0.0)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: use a number and one of s, m, h, d, w "
                         "(e.g. 30d)") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a duration >= 0")
    return seconds


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    model: Model,
    alias: AliasName,
    version: Annotated[int, typer.Argument(help="The version it points at.",
                                           show_default=False)],
    expect: Expect = None,
) -> None:
    """Point an alias at a version."""
    s = session(ctx)
    result = s.client().set_alias(model, alias, version, expected_version=expect)
    if s.out.as_json:
        s.out.json(to_dict(result))
    else:
        s.out.result(f"{result.model}@{result.alias} -> v{result.version}")


@alias_app.command("delete")
def alias_delete(ctx: typer.Context, model: Model, alias: AliasName,
                 expect: Expect = None) -> None:
    """Remove an alias."""
    s = session(ctx)
    result = s.client().delete_alias(model, alias, expected_version=expect)
    if s.out.as_json:
        s.out.json(to_dict(result))
    else:
        s.out.result(f"{result.model}@{result.alias} removed")


@schedule_app.command("show")
def schedule_show(ctx: typer.Context, model: Model) -> None:
    """Show the schedule with its next run and last outcome."""
    s = session(ctx)
    schedule = s.client().get_schedule(model)
    if s.out.as_json:
        s.out.json(to_dict(schedule))
    else:
        views.show_schedule(s.out, schedule)


@schedule_app.command("set")
def schedule_set(
    ctx: typer.Context,
    model: Model,
    data: so.Data,
    algorithm: so.Algorithm,
    cron: Annotated[str, typer.Option(help='Cron in the daemon\'s UTC clock, e.g. "0 3 * * *".')
                    ] = "",
    every: Annotated[float, typer.Option(help="A fixed interval in seconds; 0 for none.")] = 0,
    min_new_rows: Annotated[int, typer.Option(
        help="Retrain when the dataset gained this many rows; 0 for no data trigger.")] = 0,
    min_interval: Annotated[float, typer.Option(
        help="Skip runs closer together than this, seconds; 0 = daemon default.")] = 0,
    target: so.Target = "",
    param: so.Params = None,
    folds: so.Folds = 0,
    seed: so.Seed = None,
    task: so.TaskOpt = None,
    eval_label: so.EvalLabel = "",
    feature: so.Features = None,
    drop_column: so.DropColumns = None,
    filter_: so.Filters = None,
    calibration: so.Calibration = CalibrationChoice.none,
    drop_duplicates: so.DropDuplicates = False,
    fail_on_missing_target: so.FailOnMissingTarget = False,
    min_rows: so.MinRows = 0,
    max_malformed_fraction: so.MaxMalformed = None,
    no_activate: so.NoActivate = False,
    on_drift: Annotated[bool, typer.Option(
        "--on-drift", help="Retrain when the daemon's drift status of the model becomes "
        "alert (see `modelctl drift`).")] = False,
) -> None:
    """Retrain on a cron, an interval, new data and/or drift, with `train`'s options."""
    s = session(ctx)
    spec = so.build_spec(
        model, data=data, target=target, algorithm=algorithm, params=param, folds=folds,
        seed=seed, task=task, eval_label=eval_label, no_activate=no_activate, features=feature,
        drop_columns=drop_column, filters=filter_, calibration=calibration,
        drop_duplicates=drop_duplicates, fail_on_missing_target=fail_on_missing_target,
        min_rows=min_rows, max_malformed=max_malformed_fraction)
    schedule = s.client().set_schedule(Schedule(
        model, spec, cron=cron, interval_seconds=every, min_new_rows=min_new_rows,
        min_interval_seconds=min_interval, on_drift=on_drift))
    if s.out.as_json:
        s.out.json(to_dict(schedule))
    else:
        views.show_schedule(s.out, schedule)


@app.command()
def drift(ctx: typer.Context, model: Model) -> None:
    """Drift of the live traffic this daemon served to the model, per feature."""
    s = session(ctx)
    report = s.client().get_drift(model)
    if s.out.as_json:
        s.out.json(_drift_json(report))
    else:
        views.show_drift(s.out, report)


def _drift_json(report: pb.DriftReport) -> dict[str, object]:
    """The report with the proto's field names and numbers as numbers (int64 included)."""
    data: dict[str, object] = MessageToDict(report, preserving_proto_field_name=True,
                                            always_print_fields_with_no_presence=True)
    for name in ("version", "window_size", "window_rows", "sampled_rows", "dropped_rows",
                 "windows"):
        data[name] = int(str(data[name]))
    return data


@schedule_app.command("delete")
def schedule_delete(ctx: typer.Context, model: Model) -> None:
    """Remove the schedule."""
    s = session(ctx)
    schedule = s.client().delete_schedule(model)
    if s.out.as_json:
        s.out.json(to_dict(schedule))
    else:
        s.out.result(f"{schedule.model}: schedule removed")
