"""modelctl: the operator's command line for a modeld daemon. It talks only to modeld.Client.

Global options go before or after the subcommand. Exit codes: 0 ok, 1 the
daemon returned an error, 2 usage error, 3 cannot connect, 130 interrupted.
``modelctl --install-completion`` sets up shell completion (model names too).
"""

from __future__ import annotations

import enum
import itertools
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
from rich.prompt import Confirm

from modeld._channel import TLSConfig
from modeld._cli import views
from modeld._cli.follow import follow, summarize
from modeld._cli.inputs import InputError, parse_params, read_rows
from modeld._cli.output import Output
from modeld._cli.session import EXIT_SERVER, GlobalFlagsGroup, Session, session
from modeld.client import DEFAULT_ADDRESS, Client
from modeld.errors import ModeldError
from modeld.types import to_dict

__all__ = ["app", "main"]

app = typer.Typer(
    name="modelctl", cls=GlobalFlagsGroup, no_args_is_help=True, rich_markup_mode="rich",
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Train, version, serve and roll back models on a modeld daemon.")


class TaskChoice(enum.StrEnum):
    classification = "classification"
    regression = "regression"
    anomaly_detection = "anomaly_detection"


class StateChoice(enum.StrEnum):
    active = "active"
    inactive = "inactive"


class FormatChoice(enum.StrEnum):
    auto = "auto"
    csv = "csv"
    json = "json"


def _complete_models(ctx: typer.Context, incomplete: str) -> list[str]:
    """Model names for shell completion; nothing if the daemon cannot be asked quickly."""
    params = ctx.find_root().params
    try:
        with Client(params.get("address") or DEFAULT_ADDRESS, token=params.get("token"),
                    timeout=1.0, retry=None) as client:
            return [m.model for m in client.status().models if m.model.startswith(incomplete)]
    except ModeldError:
        return []


def _params(pairs: list[str]) -> dict[str, str]:
    try:
        return parse_params(pairs)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--param") from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"modelctl {metadata.version('modeld')}")
        raise typer.Exit()


Model = Annotated[str, typer.Argument(help="The model's name.", autocompletion=_complete_models,
                                      show_default=False)]
OptionalModel = Annotated[str | None, typer.Argument(
    help="One model; all if omitted.", autocompletion=_complete_models, show_default=False)]
JobId = Annotated[str, typer.Argument(help="The job's id (see `modelctl jobs`).",
                                      show_default=False)]


@app.callback()
def global_options(
    ctx: typer.Context,
    address: Annotated[str, typer.Option(envvar="MODELD_ADDRESS",
                                         help="The daemon's host:port.")] = DEFAULT_ADDRESS,
    token: Annotated[str | None, typer.Option(envvar="MODELD_TOKEN", show_default=False,
                                              help="Bearer token (prefer the env var).")] = None,
    ca_cert: Annotated[Path | None, typer.Option(help="CA bundle verifying the daemon (TLS).",
                                                 show_default=False)] = None,
    client_cert: Annotated[Path | None, typer.Option(help="Client certificate (mutual TLS).",
                                                     show_default=False)] = None,
    client_key: Annotated[Path | None, typer.Option(help="Client private key (mutual TLS).",
                                                    show_default=False)] = None,
    tls: Annotated[bool, typer.Option("--tls", help="TLS with the system's CAs.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Deadline of each call, seconds.")
                       ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (stable field names).")
                       ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Results and errors only.")
                     ] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train, version, serve and roll back models on a modeld daemon."""
    config: TLSConfig | bool | None = tls or None
    if ca_cert or client_cert or client_key:
        try:
            config = TLSConfig.from_files(ca_cert, client_cert, client_key)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="TLS options") from None
    ctx.obj = Session(address, token, config, timeout, Output(as_json, quiet))


@app.command()
def train(
    ctx: typer.Context,
    model: Model,
    data: Annotated[str, typer.Option(help="Dataset path relative to the daemon's data root.",
                                      show_default=False)],
    algorithm: Annotated[str, typer.Option("--algorithm", "-a", show_default=False,
                                           help="xgboost, random_forest, hist_gradient_boosting,"
                                                " logistic_regression, ridge, isolation_forest.")],
    target: Annotated[str, typer.Option(help="Label column (none for anomaly detection).")
                      ] = "",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Hyperparameter name=value; repeat for more.",
        show_default=False)] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds; 0 = daemon default.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed; daemon default if unset.",
                                             show_default=False)] = None,
    task: Annotated[TaskChoice | None, typer.Option(help="Inferred from the target if unset.",
                                                    show_default=False)] = None,
    eval_label: Annotated[str, typer.Option(help="Anomaly detection: label column to score."
                                            )] = "",
    no_activate: Annotated[bool, typer.Option("--no-activate",
                                              help="Publish without making it active.")] = False,
    follow_job: Annotated[bool, typer.Option("--follow", "-f",
                                             help="Show progress until the job ends.")] = False,
    request_id: Annotated[str | None, typer.Option(help="Idempotency key; random if unset.",
                                                   show_default=False)] = None,
) -> None:
    """Queue a training job (cross-validate, fit, publish a new version)."""
    s = session(ctx)
    handle = s.client().train(
        model, data, target, algorithm=algorithm, params=_params(param or []),
        folds=folds, seed=seed, task=task.value if task else None, eval_label=eval_label,
        activate=not no_activate, request_id=request_id)
    if follow_job:
        raise typer.Exit(summarize(s.out, follow(s.out, s.client(), handle)))
    job = handle.job
    assert job is not None
    if s.out.as_json:
        s.out.json(to_dict(job))
    elif s.out.quiet:
        s.out.result(job.id)
    else:
        s.out.result(f"job {job.id} {job.state.value}: {model} with {algorithm} on {data}")
        s.out.info(f"follow it with: modelctl watch {job.id}")


@app.command()
def watch(ctx: typer.Context, job_id: JobId) -> None:
    """Follow a job until it ends (Ctrl-C to cancel it or detach)."""
    s = session(ctx)
    client = s.client()
    raise typer.Exit(summarize(s.out, follow(s.out, client, client.job(job_id))))


@app.command()
def jobs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's jobs.",
                                              show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many; 0 for all.")] = 20,
) -> None:
    """List training jobs, newest first."""
    s = session(ctx)
    found = list(itertools.islice(s.client().list_jobs(model), limit or None))
    if s.out.as_json:
        s.out.json({"jobs": to_dict(found)})
    else:
        views.show_jobs(s.out, found)


@app.command()
def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a queued or running job; it publishes nothing."""
    s = session(ctx)
    job = s.client().cancel_job(job_id)
    if s.out.as_json:
        s.out.json(to_dict(job))
    else:
        s.out.result(f"job {job.id} {job.state.value}")


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
    state: Annotated[StateChoice | None, typer.Option(help="Only active or inactive ones.",
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
        current = client.status(model).models[0].active_version
        target = f"v{to}" if to else "the previous version"
        if not Confirm.ask(f"roll back {model} from v{current} to {target}?", default=False,
                           console=s.out.err):
            s.out.err.print("nothing changed")
            raise typer.Exit(EXIT_SERVER)
        # Guard against someone else changing the model between the question and the answer.
        expect_active = expect_active or current
    result = client.rollback(model, to, reason=reason, expected_active_version=expect_active)
    if s.out.as_json:
        s.out.json(to_dict(result))
    else:
        s.out.result(f"{result.model}: v{result.previous_version} -> v{result.active_version}")


@app.command()
def predict(
    ctx: typer.Context,
    model: Model,
    source: Annotated[str, typer.Argument(help="CSV or JSON file of rows; - for stdin.")] = "-",
    version: Annotated[int, typer.Option(help="A pinned version; 0 for the active one.")] = 0,
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Input format.")
                   ] = FormatChoice.auto,
) -> None:
    """Predict rows read from a CSV/JSON file or stdin; output keeps the input's order.

    The model's target column, if the file has it, is left out, so a training
    file can be fed back as is.
    """
    s = session(ctx)
    try:
        rows = read_rows(source, fmt.value, sys.stdin)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="SOURCE") from None
    client = s.client()
    schema = (client.get_version(model, version).manifest or {}).get("schema") or {}
    target = schema.get("target") or ""
    typed = rows.typed(text_columns=set(schema.get("categorical") or ()),
                       drop={target} if target else set())
    result = client.predict(model, typed, version=version)
    if s.out.as_json:
        s.out.json({"model": result.model, "version": result.version,
                    "task": result.task.value, "predictions": result.records()})
    else:
        views.show_predictions(s.out, result)


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


def main() -> None:
    """The console script's entry point."""
    app(prog_name="modelctl")


if __name__ == "__main__":
    main()
