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


class TestSwitches:
    @pytest.mark.parametrize(("argv", "watch"), [
        (["--watch"], True), (["--no-watch"], False), (["--watch", "false"], False),
        (["--watch", "--poll-interval", "1"], True), ([], True),
    ])
    def test_a_boolean_flag_needs_no_value(self, argv: list[str], watch: bool) -> None:
        """`--watch` / `--no-watch` are switches; `--watch false` still parses as before."""
        assert load_settings(argv, env={}).watch is watch

    @pytest.mark.parametrize(("argv", "env", "training"), [
        ([], {}, True), (["--no-training"], {}, False), ([], {"MODELD_TRAINING": "0"}, False),
        (["--training"], {"MODELD_TRAINING": "off"}, True),
    ])
    def test_training_is_on_unless_switched_off(self, argv: list[str], env: dict[str, str],
                                                training: bool) -> None:
        """A daemon trains by default; --no-training or MODELD_TRAINING=0 makes it serve-only."""
        assert load_settings(argv, env=env).training is training

    def test_allow_unauthenticated_network_is_a_switch(self) -> None:
        settings = load_settings(["--allow-unauthenticated-network", "--listen", "0.0.0.0:1"],
                                 env={})
        assert settings.allow_unauthenticated_network is True

    def test_the_negated_switch_beats_the_environment(self) -> None:
        env = {"MODELD_OPEN_HEALTH": "false", "MODELD_WATCH": "yes"}
        settings = load_settings(["--open-health", "--no-watch"], env=env)
        assert (settings.open_health, settings.watch) == (True, False)

    def test_a_negated_switch_with_a_value_is_a_usage_error(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            load_settings(["--no-watch", "true"], env={})
        assert exit_info.value.code == 2
        assert "--no-watch takes no value, got 'true'" in capsys.readouterr().err

    def test_help_shows_switches_without_a_value_and_each_variable(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            load_settings(["--help"], env={})
        out = capsys.readouterr().out
        assert "--watch, --no-watch " in out and "--allow-unauthenticated-network, " in out
        assert "--listen HOST:PORT" in out and "MODELD_TRAIN_MEMORY_MB" in out


class TestListen:
    @pytest.mark.parametrize(("listen", "message"), [
        ("127.0.0.1:70000", "--listen: port 70000 is out of range 0-65535 in '127.0.0.1:70000'"),
        ("127.0.0.1", "--listen must be HOST:PORT (e.g. 127.0.0.1:50051), got '127.0.0.1'"),
        ("127.0.0.1:http", "--listen must be HOST:PORT (e.g. 127.0.0.1:50051), got "
                           "'127.0.0.1:http'"),
    ])
    def test_an_invalid_address_is_refused(self, listen: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """grpc would bind 70000 modulo 65536 (4464) without a word."""
        with pytest.raises(SystemExit) as exit_info:
            load_settings([], env={"MODELD_LISTEN": listen})
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.endswith(f"error: {message}\n")

    def test_metrics_listen_is_checked_too(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            load_settings(["--metrics-listen", "127.0.0.1:99999"], env={})
        assert "--metrics-listen: port 99999 is out of range" in capsys.readouterr().err


class TestDaskFlags:
    def test_neither_is_set_by_default(self) -> None:
        """No cluster unless asked: engine=dask is refused and dask never imported."""
        settings = load_settings([], env={})
        assert settings.dask_scheduler == "" and settings.dask_local == 0

    def test_a_scheduler_address_or_a_local_cluster_size(self) -> None:
        assert load_settings(["--dask-scheduler", "tcp://10.0.0.5:8786"],
                             env={}).dask_scheduler == "tcp://10.0.0.5:8786"
        assert load_settings([], env={"MODELD_DASK_LOCAL": "2"}).dask_local == 2

    @pytest.mark.parametrize("argv", [
        ["--dask-local", "-1"], ["--dask-local", "2", "--dask-scheduler", "tcp://h:8786"],
    ])
    def test_bad_combinations_exit_with_usage_error(self, argv: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            load_settings(argv, env={})
        assert exit_info.value.code == 2
        assert "--dask-" in capsys.readouterr().err
