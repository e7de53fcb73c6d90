"""modelctl commands for the registry and serving: status, versions, show, rollback,
promote, predict, reload, health."""

from __future__ import annotations

import itertools
import sys
from typing import Annotated, Any

import typer
from rich.prompt import Confirm

from modeld._cli import views
from modeld._cli.app import FormatChoice, Model, OptionalModel, StateChoice, app
from modeld._cli.inputs import InputError, read_rows
from modeld._cli.session import EXIT_SERVER, Session, session
from modeld.client import Client
from modeld.types import to_dict

__all__ = ["health", "predict", "promote", "reload", "rollback", "show", "status", "versions"]


@app.command()
def status(ctx: typer.Context, model: OptionalModel = None) -> None:
    """Show the daemon and each model: active and loaded version, state, key metric."""
    s = session(ctx)
    result = s.client().status(model)
    if s.out.as_json:
        s.out.json(to_dict(result))
    else:
        views.show_status(s.out, result)


@app.command()
def versions(
    ctx: typer.Context,
    model: Model,
    state: Annotated[StateChoice | None, typer.Option(
        help="Only versions in this state (active, inactive or rejected).",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many; 0 for all.")] = 0,
) -> None:
    """List a model's versions, newest first; * marks the active one."""
    s = session(ctx)
    listing = s.client().versions(model, state=state.value if state else None)
    found = list(itertools.islice(listing, limit or None))
    if s.out.as_json:
        s.out.json({"model": model, "versions": to_dict(found)})
    else:
        views.show_versions(s.out, model, found)


@app.command()
def show(
    ctx: typer.Context,
    model: Model,
    version: Annotated[int, typer.Argument(help="The version; 0 for the active one.")] = 0,
    manifest: Annotated[bool, typer.Option("--manifest", help="Print manifest.json as stored.")
                        ] = False,
) -> None:
    """Show one version: its manifest, metrics, params and confusion matrix."""
    s = session(ctx)
    found = s.client().get_version(model, version)
    if s.out.as_json:
        s.out.json(to_dict(found))
    elif manifest:
        sys.stdout.write(found.raw.manifest_json + "\n")
    else:
        views.show_version(s.out, found)


@app.command()
def rollback(
    ctx: typer.Context,
    model: Model,
    to: Annotated[int, typer.Option(help="The version to activate; 0 for the previous one.")
                  ] = 0,
    reason: Annotated[str, typer.Option(help="Why, for the daemon's event log.")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
               ] = False,
    expect_active: Annotated[int, typer.Option(
        help="Only if this version is still active (0: the one shown when asking).")] = 0,
) -> None:
    """Make an earlier version active; prints previous -> new."""
    s = session(ctx)
    client = s.client()
    if s.out.interactive and not yes:
        # Ask the daemon which version "the previous one" is, and roll back to exactly the
        # versions the question named.
        plan = client.rollback(model, to, expected_active_version=expect_active, dry_run=True)
        _ask(s, f"roll back {model} from v{plan.previous_version} to v{plan.active_version}?")
        to, expect_active = plan.active_version, plan.previous_version
    result = client.rollback(model, to, reason=reason, expected_active_version=expect_active)
    _print_switch(s, to_dict(result), result.model, result.previous_version,
                  result.active_version)


def _schema(client: Client, model: str, version: int, alias: str) -> dict[str, Any]:
    """The input schema of the version that will answer (target, categorical columns)."""
    if alias and not version:
        version = client.status(model).models[0].aliases.get(alias, 0)
        if not version:
            return {}  # an unknown alias: let Predict report it
    schema = (client.get_version(model, version).manifest or {}).get("schema")
    return schema if isinstance(schema, dict) else {}


def _confirm(s: Session, model: str, action: str) -> int:
    """Asks before changing what serves; returns the active version the question showed."""
    current = s.client().status(model).models[0].active_version
    _ask(s, f"{action} (active now: v{current})?")
    # Guard against someone else changing the model between the question and the answer.
    return current


def _ask(s: Session, question: str) -> None:
    """Exits 1 with "nothing changed" unless the operator says yes."""
    if not Confirm.ask(question, default=False, console=s.out.err):
        s.out.err.print("nothing changed")
        raise typer.Exit(EXIT_SERVER)


def _print_switch(s: Session, data: object, model: str, previous: int, active: int) -> None:
    if s.out.as_json:
        s.out.json(data)
    else:
        s.out.result(f"{model}: v{previous} -> v{active}")


@app.command()
def promote(
    ctx: typer.Context,
    model: Model,
    version: Annotated[int, typer.Argument(help="The version to activate.", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why, for the event log (required).",
                                        show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
               ] = False,
    expect_active: Annotated[int, typer.Option(
        help="Only if this version is still active (0: the one shown when asking).")] = 0,
) -> None:
    """Activate a version regardless of the quality gate (a rejected one too)."""
    s = session(ctx)
    client = s.client()
    if s.out.interactive and not yes:
        shown = _confirm(s, model, f"promote v{version} of {model}")
        expect_active = expect_active or shown
    result = client.promote(model, version, reason=reason,
                            expected_active_version=expect_active)
    _print_switch(s, to_dict(result), result.model, result.previous_version,
                  result.active_version)


@app.command()
def predict(
    ctx: typer.Context,
    model: Model,
    source: Annotated[str, typer.Argument(help="CSV or JSON file of rows; - for stdin.")] = "-",
    version: Annotated[int, typer.Option(help="A pinned version; 0 for the active one.")] = 0,
    alias: Annotated[str, typer.Option(help="The version an alias names (e.g. challenger).")
                     ] = "",
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Input format.")
                   ] = FormatChoice.auto,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Also show each row's top feature contributions (xgboost, "
        "logistic_regression, ridge).")] = False,
    ignore_extra_columns: Annotated[bool, typer.Option(
        "--ignore-extra-columns", help="Skip columns that are not features (ids, timestamps).")
                                    ] = False,
) -> None:
    """Predict rows read from a CSV/JSON file or stdin; output keeps the input's order.

    The model's target column, if the file has it, is left out, so a training
    file can be fed back as is; other columns the model does not use are an
    error unless --ignore-extra-columns.
    """
    s = session(ctx)
    try:
        rows = read_rows(source, fmt.value, sys.stdin)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="SOURCE") from None
    client = s.client()
    schema = _schema(client, model, version, alias)
    target = schema.get("target") or ""
    typed = rows.typed(text_columns=set(schema.get("categorical") or ()),
                       drop={target} if target else set())
    result = client.predict(model, typed, version=version, alias=alias, explain=explain,
                            ignore_extra_columns=ignore_extra_columns)
    if s.out.as_json:
        records = result.records()
        for record, why in zip(records, result.explanations, strict=False):
            record["explanation"] = to_dict(why)
        s.out.json({"model": result.model, "version": result.version,
                    "task": result.task.value, "predictions": records})
    else:
        views.show_predictions(s.out, result)
        if result.explanations:
            views.show_explanations(s.out, result)


@app.command()
def reload(ctx: typer.Context, model: OptionalModel = None) -> None:
    """Re-scan the registry on disk and serve what it says."""
    s = session(ctx)
    models = s.client().reload(model)
    if s.out.as_json:
        s.out.json({"models": to_dict(models)})
    else:
        views.show_models(s.out, models)


@app.command()
def health(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="A service name; the whole daemon if empty.")
                       ] = "",
) -> None:
    """Ask grpc.health.v1 whether the daemon serves; exit 1 unless SERVING."""
    s = session(ctx)
    answer = s.client().health(service)
    if s.out.as_json:
        s.out.json({"service": service, "status": answer})
    else:
        s.out.result(answer)
    if answer != "SERVING":
        raise typer.Exit(EXIT_SERVER)
