"""The training options `train` and `schedule set` share, and the TrainSpec they build.

Declared once as Annotated types so both commands spell and document every
flag the same way; grouped into help panels so `train -h` stays readable.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modeld._cli.app import AlgorithmChoice, CalibrationChoice, EngineChoice, TaskChoice
from modeld._cli.inputs import InputError, parse_filter, parse_params
from modeld.options import TrainSpec, Validation

__all__ = ["build_spec"]

_DATA = "Data"
_VALIDATION = "Validation"
_MODEL = "Model"

Data = Annotated[str, typer.Option(
    help="Dataset path relative to the daemon's data root (CSV or Parquet).",
    show_default=False, rich_help_panel=_DATA)]
Target = Annotated[str, typer.Option(help="Label column (none for anomaly detection).",
                                     rich_help_panel=_DATA)]
Features = Annotated[list[str] | None, typer.Option(
    "--feature", help="Use only this feature column; repeat for more.", show_default=False,
    rich_help_panel=_DATA)]
DropColumns = Annotated[list[str] | None, typer.Option(
    "--drop-column", help="Never use this column (ids, leaks); repeat for more.",
    show_default=False, rich_help_panel=_DATA)]
Filters = Annotated[list[str] | None, typer.Option(
    "--filter", show_default=False, rich_help_panel=_DATA,
    help="Keep rows where col=LO..HI (numbers, a bound may be empty), col=A,B (values), "
         "or col@START..END (ISO dates); repeat for more.")]
EvalLabel = Annotated[str, typer.Option(help="Anomaly detection: a label column to score with.",
                                        rich_help_panel=_DATA)]
Algorithm = Annotated[AlgorithmChoice, typer.Option(
    "--algorithm", "-a", show_default=False, rich_help_panel=_MODEL,
    help="The estimator (completion offers them).")]
Params = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Hyperparameter name=value; repeat for more.", show_default=False,
    rich_help_panel=_MODEL)]
Folds = Annotated[int, typer.Option(help="Cross-validation folds, 2..20; 0 = daemon default.",
                                    rich_help_panel=_MODEL)]
Seed = Annotated[int | None, typer.Option(help="Seed; the daemon's default if unset.",
                                          show_default=False, rich_help_panel=_MODEL)]
TaskOpt = Annotated[TaskChoice | None, typer.Option(
    "--task", help="Inferred from the target if unset.", show_default=False,
    rich_help_panel=_MODEL)]
Calibration = Annotated[CalibrationChoice, typer.Option(
    help="Probability calibration (classification).", rich_help_panel=_MODEL)]
Engine = Annotated[EngineChoice, typer.Option(
    help="Where it trains: local, dask (the daemon's Dask cluster), or auto (dask for "
         "datasets over the model's policy dask_above_bytes).",
    rich_help_panel=_MODEL)]
NoActivate = Annotated[bool, typer.Option("--no-activate", rich_help_panel=_MODEL,
                                          help="Publish the version without activating it.")]
DropDuplicates = Annotated[bool, typer.Option(
    "--drop-duplicates", help="Drop exact duplicate rows.", rich_help_panel=_VALIDATION)]
FailOnMissingTarget = Annotated[bool, typer.Option(
    "--fail-on-missing-target", help="Fail when a row has no target (default: drop it).",
    rich_help_panel=_VALIDATION)]
MinRows = Annotated[int, typer.Option(help="Fewer usable rows fail the job; 0 = daemon default.",
                                      rich_help_panel=_VALIDATION)]
MaxMalformed = Annotated[float | None, typer.Option(
    help="Fail when more than this fraction of rows is malformed.", show_default=False,
    rich_help_panel=_VALIDATION)]


def build_spec(model: str, *, data: str, target: str, algorithm: AlgorithmChoice | str,
               params: list[str] | None, folds: int, seed: int | None,
               task: TaskChoice | None, eval_label: str, no_activate: bool,
               features: list[str] | None, drop_columns: list[str] | None,
               filters: list[str] | None, calibration: CalibrationChoice,
               drop_duplicates: bool, fail_on_missing_target: bool, min_rows: int,
               max_malformed: float | None) -> TrainSpec:
    """The TrainSpec the options describe.

    Args:
        model: The model's name.
        data, target, algorithm, params, folds, seed, task, eval_label, no_activate,
        features, drop_columns, filters, calibration, drop_duplicates,
        fail_on_missing_target, min_rows, max_malformed: The options, as typed.

    Returns:
        The spec. A malformed --param or --filter is a usage error (exit 2).
    """
    try:
        parsed_params = parse_params(params or [])
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--param") from None
    try:
        parsed_filters = tuple(parse_filter(text) for text in filters or [])
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from None
    validation = None
    if drop_duplicates or fail_on_missing_target or min_rows or max_malformed is not None:
        validation = Validation(drop_duplicates=drop_duplicates,
                                fail_on_missing_target=fail_on_missing_target,
                                min_rows=min_rows, max_malformed_fraction=max_malformed)
    return TrainSpec(
        model, data, target=target, algorithm=str(algorithm), params=parsed_params,
        folds=folds, seed=seed, task=task.value if task else None, eval_label=eval_label,
        activate=not no_activate, features=tuple(features or ()),
        drop_columns=tuple(drop_columns or ()), filters=parsed_filters, validation=validation,
        calibration=calibration.value)
