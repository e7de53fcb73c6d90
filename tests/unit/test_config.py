"""Settings: flag > MODELD_* environment > default; bad values exit like argparse."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeld_server.config import Settings, load_settings
from modeld_server.training.params import parse_param


def test_defaults() -> None:
    assert load_settings([], env={}) == Settings()


def test_job_cpus_reads_its_environment_variable() -> None:
    settings = load_settings([], env={"MODELD_JOB_CPUS": "1"})
    assert settings.job_cpus == 1


def test_flag_beats_environment_beats_default() -> None:
    env = {"MODELD_LISTEN": "0.0.0.0:1", "MODELD_POLL_INTERVAL": "0.5", "MODELD_WATCH": "no"}
    settings = load_settings(["--listen", "127.0.0.1:0", "--registry", "/r"], env=env)
    assert settings.listen == "127.0.0.1:0"
    assert settings.poll_interval == 0.5 and settings.watch is False
    assert settings.registry == Path("/r")


@pytest.mark.parametrize("argv", [
    ["--max-concurrent-jobs", "0"], ["--poll-interval", "-1"], ["--watch", "maybe"],
    ["--rpc-threads", "many"], ["--no-such-flag", "1"], ["--job-cpus", "-1"],
])
def test_bad_values_exit_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(argv, env={})
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("raw", "value"), [
    ("6", 6), ("0.1", 0.1), ("1.0", 1.0), ("true", True), ("None", None), ("null", None),
    ("gini", "gini"), ("[1, 2]", [1, 2]), ("False", False),
])
def test_params_parse_as_json_literals_else_strings(raw: str, value: object) -> None:
    parsed = parse_param(raw)
    assert parsed == value and type(parsed) is type(value)
