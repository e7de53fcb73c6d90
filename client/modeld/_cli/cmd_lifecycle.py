"""modelctl commands for the model lifecycle: `policy`, `alias` and `schedule` groups."""

from __future__ import annotations

from typing import Annotated

import typer

from modeld._cli import spec_options as so
from modeld._cli import views
from modeld._cli.app import CalibrationChoice, Model, app
from modeld._cli.session import session
from modeld.lifecycle import Policy, Schedule, thresholds
from modeld.types import to_dict

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
) -> None:
    """Replace the whole policy (unset options take the daemon's defaults)."""
    s = session(ctx)
    try:
        bounds = thresholds(threshold or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--threshold") from None
    policy = s.client().set_policy(Policy(model, primary_metric, tolerance, bounds, disabled))
    if s.out.as_json:
        s.out.json(to_dict(policy))
    else:
        views.show_policy(s.out, policy)


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
) -> None:
    """Retrain on a cron, an interval and/or new data, with `train`'s options."""
    s = session(ctx)
    spec = so.build_spec(
        model, data=data, target=target, algorithm=algorithm, params=param, folds=folds,
        seed=seed, task=task, eval_label=eval_label, no_activate=no_activate, features=feature,
        drop_columns=drop_column, filters=filter_, calibration=calibration,
        drop_duplicates=drop_duplicates, fail_on_missing_target=fail_on_missing_target,
        min_rows=min_rows, max_malformed=max_malformed_fraction)
    schedule = s.client().set_schedule(Schedule(
        model, spec, cron=cron, interval_seconds=every, min_new_rows=min_new_rows,
        min_interval_seconds=min_interval))
    if s.out.as_json:
        s.out.json(to_dict(schedule))
    else:
        views.show_schedule(s.out, schedule)


@schedule_app.command("delete")
def schedule_delete(ctx: typer.Context, model: Model) -> None:
    """Remove the schedule."""
    s = session(ctx)
    schedule = s.client().delete_schedule(model)
    if s.out.as_json:
        s.out.json(to_dict(schedule))
    else:
        s.out.result(f"{schedule.model}: schedule removed")
