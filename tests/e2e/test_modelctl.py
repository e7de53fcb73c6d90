"""modelctl end to end: the installed script, run as a subprocess against a live daemon.

The `daemon` fixture (tests/conftest.py) serves a fresh registry on 127.0.0.1
port 0 with spambase.csv in its data root. Output is piped, so these tests
see what scripts and CI logs see: plain lines, no colour, JSON on --json.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

SCRIPT = Path(sys.executable).with_name("modelctl")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "modeld.cli"]
TRAIN_SPAM = ("train", "spam", "--data", "spambase.csv", "--target", "is_spam",
              "--algorithm", "xgboost")


class Daemon(Protocol):
    address: str
    data_root: Path
    registry: Path


Run = Callable[..., subprocess.CompletedProcess[str]]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELD_")}
    env["NO_COLOR"] = "1"
    return env


def in_foreground(command: list[str]) -> list[str]:
    """`command`, started with SIGINT at its default, as a terminal's foreground job is.

    Shells start background jobs, and nohup-style wrappers and some CI runners start
    the whole suite, with SIGINT ignored; a child inherits that, and Python then never
    raises KeyboardInterrupt, as it should not for a job the shell shielded from Ctrl-C.
    A test of Ctrl-C stands for a user at a terminal, so it restores the default in a
    small wrapper that then execs the command (preexec_fn is unsafe in this threaded
    process; a handled signal is reset at exec, an ignored one is not).
    """
    restore = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", restore, *command]


def run_modelctl(address: str, *args: str, stdin: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs modelctl against `address`, capturing text output."""
    return subprocess.run([*COMMAND, "--address", address, *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture
def modelctl(daemon: Daemon) -> Run:
    """modelctl bound to the live daemon."""
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_modelctl(daemon.address, *args, stdin=stdin)
    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a run that must have succeeded (stderr shown if not)."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


@pytest.fixture
def unused_address() -> Iterator[str]:
    # Bound but never listening: connections are refused and no one else gets the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


class TestTrain:
    def test_follow_shows_each_step_then_metrics_and_the_new_version(self, modelctl: Run) -> None:
        """train --follow prints plain progress lines, a metrics table and `spam v1 (active)`."""
        result = modelctl(*TRAIN_SPAM, "--param", "max_depth=6", "--folds", "3", "--follow")
        out = ok(result)
        *lines, title = result.stderr.splitlines()  # progress lines, then the table's title
        steps = [line.split(" ", 1)[1] for line in lines]  # drop the time
        assert any(step.startswith("running cross_validation ") for step in steps)
        assert steps[-1].startswith("succeeded done 100%")
        assert title == "cross-validated metrics"
        table = [line.split() for line in out.splitlines()]
        assert table[0] == ["METRIC", "MEAN", "STD", "FOLDS"]
        f1 = next(row for row in table if row[0] == "f1")
        assert float(f1[1]) > 0.85 and len(f1) == 6  # name, mean, std, three folds
        assert out.splitlines()[-1] == "spam v1 (active)"

    def test_json_follow_prints_the_final_job(self, modelctl: Run) -> None:
        """--json train --follow prints the finished job as one JSON document."""
        job = as_json(modelctl("--json", *TRAIN_SPAM, "--folds", "2", "--follow"))
        assert (job["model"], job["state"], job["version"], job["activated"]) == (
            "spam", "succeeded", 1, True)
        assert set(job["metrics"]) >= {"accuracy", "f1", "roc_auc", "log_loss"}
        assert len(job["metrics"]["f1"]["folds"]) == 2
        jobs = as_json(modelctl("jobs", "--json"))["jobs"]
        assert [(j["id"], j["state"]) for j in jobs] == [(job["id"], "succeeded")]

    def test_ctrl_c_without_a_terminal_detaches(self, modelctl: Run, daemon: Daemon) -> None:
        """SIGINT while following detaches (exit 130); the job goes on and can be cancelled."""
        proc = subprocess.Popen(in_foreground([*COMMAND, "--address", daemon.address,
                                               *TRAIN_SPAM, "--folds", "20", "--follow"]),
                                stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=_env())
        assert proc.stderr is not None
        for line in proc.stderr:
            if "cross_validation" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "detached; job j" in rest
        job_id = rest.split("detached; job ", 1)[1].split()[0]
        cancelled = modelctl("cancel", job_id)
        # The job may have finished in the meantime; either way the daemon knew it.
        assert cancelled.returncode in (0, 1)
        assert job_id in cancelled.stdout + cancelled.stderr


class TestInspect:
    def test_status_versions_and_show(self, modelctl: Run) -> None:
        """After two trainings: status, versions (active marked) and show agree."""
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--follow"))
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--param", "max_depth=3", "--no-activate",
                    "--follow"))
        status = as_json(modelctl("status", "--json"))
        (spam,) = status["models"]
        assert (spam["model"], spam["active_version"], spam["loaded_version"]) == ("spam", 1, 1)
        assert (spam["state"], spam["version_count"], spam["latest_version"]) == ("ready", 2, 2)

        rows = [line.split() for line in ok(modelctl("versions", "spam")).splitlines()]
        assert rows[0] == ["VERSION", "STATE", "CREATED", "ALGORITHM", "KEY", "METRIC", "ROWS",
                           "ALIASES"]
        assert rows[1][:2] == ["2", "inactive"]
        assert rows[2][:3] == ["*", "1", "active"]
        assert rows[2][-1] == "4601"

        shown = ok(modelctl("show", "spam", "2"))
        assert "version    2 (inactive)" in shown
        assert "params     max_depth=3" in shown
        version = as_json(modelctl("--json", "show", "spam"))
        assert (version["version"], version["state"], version["algorithm"]) == (
            1, "active", "xgboost")
        assert version["manifest"]["version"] == 1
        assert "is_spam" not in version["features"] and len(version["features"]) == 57


class TestRollback:
    def test_rollback_yes_prints_previous_to_new_and_swaps_back(self, modelctl: Run) -> None:
        """rollback --yes goes back one version; a second rollback swaps forward again."""
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--follow"))
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--follow"))
        assert ok(modelctl("rollback", "spam", "--yes", "--reason", "e2e")) == "spam: v2 -> v1\n"
        assert as_json(modelctl("--json", "status", "spam"))["models"][0]["loaded_version"] == 1
        swapped = as_json(modelctl("--json", "rollback", "spam", "--yes"))
        assert swapped == {"model": "spam", "previous_version": 1, "active_version": 2}


class TestLifecycle:
    def test_alias_predict_and_promote(self, modelctl: Run, daemon: Daemon) -> None:
        """A challenger kept inactive gets an alias, answers by it, then is promoted."""
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--follow"))
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--param", "max_depth=3", "--no-activate",
                    "--follow"))
        assert ok(modelctl("alias", "set", "spam", "challenger", "2")) == (
            "spam@challenger -> v2\n")
        rows = [line.split() for line in ok(modelctl("versions", "spam")).splitlines()]
        assert rows[1][:2] == ["2", "inactive"] and rows[1][-1] == "challenger"
        rows = str(daemon.data_root / "spambase.csv")
        by_alias = as_json(modelctl("--json", "predict", "spam", rows, "--alias", "challenger"))
        assert by_alias["version"] == 2 and len(by_alias["predictions"]) == 4601
        assert as_json(modelctl("--json", "predict", "spam", rows))["version"] == 1
        promoted = ok(modelctl("promote", "spam", "2", "--reason", "e2e", "--yes"))
        assert promoted == "spam: v1 -> v2\n"


class TestPredict:
    def test_predict_from_the_training_csv(self, modelctl: Run, daemon: Daemon,
                                           tmp_path: Path) -> None:
        """Rows from a CSV (target column included) or stdin JSON: one prediction each, in order."""
        ok(modelctl(*TRAIN_SPAM, "--folds", "2", "--follow"))
        with (daemon.data_root / "spambase.csv").open() as source:
            all_rows = list(csv.reader(source))
        rows = [all_rows[0], *all_rows[1:5], *all_rows[-4:]]  # header, 4 spam, 4 ham
        path = tmp_path / "rows.csv"
        with path.open("w", newline="") as target:
            csv.writer(target).writerows(rows)

        table = [line.split() for line in ok(modelctl("predict", "spam", str(path))).splitlines()]
        assert table[0] == ["ROW", "PREDICTION", "PROBABILITY"]
        assert [row[0] for row in table[1:]] == [str(i) for i in range(8)]

        result = as_json(modelctl("--json", "predict", "spam", str(path)))
        assert (result["model"], result["version"], result["task"]) == ("spam", 1,
                                                                       "classification")
        predictions = result["predictions"]
        assert len(predictions) == 8
        for p in predictions:
            assert p["prediction"] in ("0", "1")
            assert sum(p["probabilities"].values()) == pytest.approx(1.0)
        truth = [row[-1] for row in rows[1:]]
        assert sum(p["prediction"] == t for p, t in zip(predictions, truth, strict=True)) >= 7

        # The same rows as JSON on stdin give the same predictions.
        header = rows[0]
        records = [{k: float(v) for k, v in zip(header, row, strict=True) if k != "is_spam"}
                   for row in rows[1:]]
        from_stdin = as_json(modelctl("--json", "predict", "spam", "-",
                                      stdin=json.dumps(records)))
        assert from_stdin["predictions"] == predictions

        # An id and a timestamp the model does not use: refused, unless ignored.
        with_extra = tmp_path / "with_extra.csv"
        with with_extra.open("w", newline="") as target:
            csv.writer(target).writerows([["id", "ts", *rows[0]], *(
                [str(i), f"2024-01-0{i + 1}T00:00:00", *row] for i, row in enumerate(rows[1:]))])
        refused = modelctl("predict", "spam", str(with_extra))
        assert refused.returncode == 1
        assert refused.stderr == (
            "error: INVALID_ARGUMENT: rows[0] has columns 'id', 'ts', which are not features of "
            "this model (set ignore_extra_columns, or --ignore-extra-columns, to skip such "
            "columns)\n")
        ignored = as_json(modelctl("--json", "predict", "spam", str(with_extra),
                                   "--ignore-extra-columns"))
        assert ignored["predictions"] == predictions


class TestExitCodes:
    def test_zero_when_healthy(self, modelctl: Run) -> None:
        """health prints SERVING and exits 0."""
        assert ok(modelctl("health")) == "SERVING\n"

    def test_one_for_an_unknown_model(self, modelctl: Run) -> None:
        """A NOT_FOUND from the daemon exits 1 with the code and message on stderr."""
        result = modelctl("versions", "ghost")
        assert result.returncode == 1
        assert result.stderr.startswith("error: NOT_FOUND: ")
        assert "ghost" in result.stderr and "Traceback" not in result.stderr

    def test_one_for_a_refused_training_request(self, modelctl: Run) -> None:
        """An unknown target column is INVALID_ARGUMENT: exit 1."""
        result = modelctl("train", "spam", "--data", "spambase.csv", "--target", "nope",
                          "--algorithm", "xgboost")
        assert result.returncode == 1
        assert result.stderr.startswith("error: INVALID_ARGUMENT: ")

    def test_two_for_a_usage_error(self, modelctl: Run) -> None:
        """A missing required option exits 2."""
        result = modelctl("train", "spam", "--target", "is_spam", "--algorithm", "xgboost")
        assert result.returncode == 2
        assert "Missing option '--data'" in result.stderr

    def test_three_when_nothing_listens(self, unused_address: str) -> None:
        """A port nobody serves exits 3 quickly, naming the address tried."""
        started = time.monotonic()
        result = run_modelctl(unused_address, "status")
        assert result.returncode == 3
        assert result.stderr.startswith(f"error: cannot connect to {unused_address}: ")
        assert time.monotonic() - started < 10
