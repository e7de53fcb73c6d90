"""modelctl's help: flags that take no value show none, arguments read MODEL, choices listed."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from modeld.cli import app

runner = CliRunner()


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths.extend(_paths(sub, (*prefix, name)))
    return paths


COMMANDS = _paths(typer.main.get_command(app))


def _help(*path: str) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_covered() -> None:
    assert ("train",) in COMMANDS and ("alias", "set") in COMMANDS and len(COMMANDS) > 20


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "modelctl")
def test_no_flag_shows_a_value_and_no_argument_is_braced(path: tuple[str, ...]) -> None:
    """`--json`, `-y`, `--help` show no `<bool>`; usage shows MODEL, not {model}."""
    text = _help(*path)
    assert "<bool>" not in text
    assert "{" not in text and "}" not in text


def test_arguments_are_upper_case_in_usage_and_panel() -> None:
    text = _help("predict")
    assert "Usage: modelctl predict [OPTIONS] MODEL [SOURCE]" in text
    assert "MODEL " in text.split("Arguments")[1]


def test_algorithm_offers_its_choices_in_help_and_completion() -> None:
    train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    algorithm = next(p for p in train.params if p.name == "algorithm")
    assert algorithm.display_type(typer.Context(train)) == (
        "<xgboost|random_forest|hist_gradient_boosting|logistic_regression|ridge|"
        "isolation_forest>")
    items = algorithm.shell_complete(typer.Context(train), "is")
    assert [item.value for item in items] == ["isolation_forest"]


def test_an_unknown_algorithm_is_a_usage_error_naming_the_choices() -> None:
    result = runner.invoke(app, ["train", "m", "--data", "d.csv", "-a", "xgbost"],
                           env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 2
    assert "'xgbost' is not one of 'xgboost', 'random_forest'" in result.output
