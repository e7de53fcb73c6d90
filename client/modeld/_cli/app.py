"""The modelctl Typer app: global options, shared argument types, shell completion.

Commands register themselves on ``app`` from the ``cmd_*`` modules, which
``modeld.cli`` imports.
"""

from __future__ import annotations

import enum
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from modeld._channel import TLSConfig
from modeld._cli.helpfmt import HELP_NAMES
from modeld._cli.output import Output
from modeld._cli.session import GlobalFlagsGroup, Session
from modeld.client import DEFAULT_ADDRESS, Client
from modeld.errors import ModeldError

__all__ = ["AlgorithmChoice", "CalibrationChoice", "FormatChoice", "JobId", "Model",
           "OptionalModel", "StateChoice", "TaskChoice", "app"]

app = typer.Typer(
    name="modelctl", cls=GlobalFlagsGroup, no_args_is_help=True, rich_markup_mode="rich",
    pretty_exceptions_enable=False, context_settings={"help_option_names": HELP_NAMES},
    help="Train, version, serve and roll back models on a modeld daemon.")


class AlgorithmChoice(enum.StrEnum):
    xgboost = "xgboost"
    random_forest = "random_forest"
    hist_gradient_boosting = "hist_gradient_boosting"
    logistic_regression = "logistic_regression"
    ridge = "ridge"
    isolation_forest = "isolation_forest"


class CalibrationChoice(enum.StrEnum):
    none = "none"
    sigmoid = "sigmoid"
    isotonic = "isotonic"
    auto = "auto"


class EngineChoice(enum.StrEnum):
    local = "local"
    dask = "dask"
    auto = "auto"


class TaskChoice(enum.StrEnum):
    classification = "classification"
    regression = "regression"
    anomaly_detection = "anomaly_detection"


class StateChoice(enum.StrEnum):
    active = "active"
    inactive = "inactive"
    rejected = "rejected"


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
