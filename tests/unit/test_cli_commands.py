"""modelctl's commands against a scripted daemon: what each sends, prints, and prints as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modeld._cli.output import Output
from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Running, job, metric, running_fake

runner = CliRunner()
METRICS = {"f1": metric(0.938, 0.002, (0.936, 0.940)), "accuracy": metric(0.95, 0.001)}
MANIFEST = {"schema": {"target": "is_spam", "categorical": ["zip"], "numeric": ["a"]}}


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


def modelctl(live: Running, *args: str, stdin: str | None = None,
             env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["--address", live.address, *args], input=stdin, env=env)


def version(number: int, active: bool = False, **fields: object) -> pb.Version:
    state = pb.VERSION_STATE_ACTIVE if active else pb.VERSION_STATE_INACTIVE
    return pb.Version(model="spam", version=number, state=state, algorithm="xgboost",
                      metrics=METRICS, rows=4601, **fields)  # type: ignore[arg-type]


def status_reply() -> pb.GetStatusResponse:
    return pb.GetStatusResponse(
        daemon=pb.DaemonStatus(build_version="0.1.0", uptime_seconds=75, registry_root="/r"),
        models=[pb.ModelStatus(model="spam", active_version=2, loaded_version=2,
                               state=pb.LOAD_STATE_READY, algorithm="xgboost", metrics=METRICS,
                               version_count=2, drift_status="alert"),
                pb.ModelStatus(model="fraud", active_version=1, loaded_version=0,
                               state=pb.LOAD_STATE_FAILED, last_error="checksum mismatch")])


class TestStatus:
    def test_table_shows_each_model_and_its_error(self, live: Running) -> None:
        """One line per model with versions, state, key metric, drift and last error."""
        live.fake.on("GetStatus", status_reply())
        result = modelctl(live, "status")
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        assert lines[0] == "modeld 0.1.0 · up 1m15s · jobs 0 running, 0 queued · registry /r"
        assert lines[2].split() == ["spam", "v2", "v2", "ready", "xgboost", "f1", "0.938±0.002",
                                    "2", "alert"]
        assert lines[3].split()[:4] == ["fraud", "v1", "-", "failed"]
        assert lines[3].endswith("checksum mismatch")

    def test_json_has_stable_field_names(self, live: Running) -> None:
        """--json prints the daemon and models with the dataclass field names."""
        live.fake.on("GetStatus", status_reply())
        data = json.loads(modelctl(live, "--json", "status").stdout)
        assert data["daemon"]["build_version"] == "0.1.0"
        assert [m["model"] for m in data["models"]] == ["spam", "fraud"]
        assert data["models"][0]["metrics"]["f1"] == {"mean": 0.938, "std": 0.002,
                                                      "folds": [0.936, 0.94]}
        assert data["models"][1]["state"] == "failed"

    def test_global_options_work_after_the_subcommand(self, live: Running) -> None:
        """`modelctl status --json` equals `modelctl --json status`."""
        live.fake.on("GetStatus", status_reply())
        after = modelctl(live, "status", "--json")
        assert after.exit_code == 0
        assert json.loads(after.stdout)["models"][0]["model"] == "spam"

    def test_token_comes_from_the_environment(self, live: Running) -> None:
        """MODELD_TOKEN is sent as a bearer token."""
        live.fake.on("GetStatus", status_reply())
        modelctl(live, "status", env={"MODELD_TOKEN": "t0k"})
        assert live.fake.calls[0].metadata["authorization"] == "Bearer t0k"


class TestVersions:
    def test_table_marks_the_active_version(self, live: Running) -> None:
        """Newest first; the active version has a * in the first column."""
        live.fake.on("ListVersions", pb.ListVersionsResponse(
            versions=[version(2, active=True), version(1)], active_version=2))
        lines = modelctl(live, "versions", "spam").stdout.splitlines()
        assert lines[0].split() == ["VERSION", "STATE", "CREATED", "ALGORITHM", "KEY", "METRIC",
                                    "ROWS", "ALIASES"]
        assert lines[1].split()[:3] == ["*", "2", "active"]
        assert lines[2].split()[:2] == ["1", "inactive"]

    def test_state_filter_and_json(self, live: Running) -> None:
        """--state is sent to the daemon; --json lists the versions under their model."""
        live.fake.on("ListVersions", pb.ListVersionsResponse(versions=[version(2, active=True)]))
        data = json.loads(modelctl(live, "--json", "versions", "spam", "--state", "active").stdout)
        assert live.fake.requests("ListVersions")[0].state == pb.VERSION_STATE_ACTIVE
        assert data["model"] == "spam"
        assert [(v["version"], v["state"]) for v in data["versions"]] == [(2, "active")]


class TestShow:
    def test_shows_facts_and_metrics(self, live: Running) -> None:
        """show prints the version's facts, then its metrics table."""
        live.fake.on("GetVersion", version(2, active=True, params={"max_depth": "6"},
                                           manifest_json=json.dumps(MANIFEST)))
        out = modelctl(live, "show", "spam", "2").stdout
        assert "version    2 (active)" in out
        assert "params     max_depth=6" in out
        assert any(line.split()[:3] == ["f1", "0.9380", "0.0020"] for line in out.splitlines())
        assert live.fake.requests("GetVersion")[0].version == 2

    def test_manifest_flag_prints_the_stored_json(self, live: Running) -> None:
        """--manifest prints manifest.json as the daemon stores it."""
        live.fake.on("GetVersion", version(2, manifest_json=json.dumps(MANIFEST)))
        assert json.loads(modelctl(live, "show", "spam", "--manifest").stdout) == MANIFEST

    def test_json_includes_the_parsed_manifest(self, live: Running) -> None:
        """--json includes the manifest as an object, not a string."""
        live.fake.on("GetVersion", version(2, manifest_json=json.dumps(MANIFEST)))
        assert json.loads(modelctl(live, "--json", "show", "spam").stdout)["manifest"] == MANIFEST


class TestTrain:
    ARGS = ("train", "spam", "--data", "spambase.csv", "--target", "is_spam", "-a", "xgboost")

    def test_flags_become_the_request(self, live: Running) -> None:
        """Params pass through as strings; folds, seed, task, no-activate, request id are sent."""
        live.fake.on("Train", job("j7"))
        result = modelctl(live, *self.ARGS, "--param", "max_depth=6", "-p", "eta=0.1",
                          "--folds", "3", "--seed", "7", "--task", "classification",
                          "--no-activate", "--request-id", "r-1")
        assert result.exit_code == 0
        request = live.fake.requests("Train")[0]
        assert dict(request.params) == {"max_depth": "6", "eta": "0.1"}
        assert (request.cv_folds, request.seed, request.task) == (3, 7, pb.TASK_CLASSIFICATION)
        assert request.no_activate and request.request_id == "r-1"
        assert result.stdout == "job j7 queued: spam with xgboost on spambase.csv\n"
        assert result.stderr == "follow it with: modelctl watch j7\n"

    def test_engine_dask_is_sent_and_local_is_the_empty_default(self, live: Running) -> None:
        live.fake.on("Train", job("j7"))
        assert modelctl(live, *self.ARGS, "--engine", "dask").exit_code == 0
        assert modelctl(live, *self.ARGS).exit_code == 0
        assert [r.engine for r in live.fake.requests("Train")] == ["dask", ""]

    def test_quiet_prints_only_the_job_id(self, live: Running) -> None:
        """-q prints the job id alone, for scripts: JOB=$(modelctl -q train ...)."""
        live.fake.on("Train", job("j7"))
        result = modelctl(live, "-q", *self.ARGS)
        assert (result.stdout, result.stderr) == ("j7\n", "")

    def test_follow_prints_lines_then_metrics_and_version(self, live: Running) -> None:
        """--follow without a terminal: a plain line per step, then metrics and the version."""
        live.fake.on("Train", job("j7"))
        live.fake.on("WatchJob", [
            job("j7", pb.JOB_STATE_RUNNING, phase="cross_validation", progress=0.35,
                message="fold 2/3"),
            job("j7", pb.JOB_STATE_SUCCEEDED, phase="done", progress=1.0, version=3,
                activated=True, metrics=METRICS, message="published version 3")])
        result = modelctl(live, *self.ARGS, "--follow")
        assert result.exit_code == 0
        steps = [line.split(" ", 1)[1] for line in result.stderr.splitlines()[:-1]]
        assert steps == ["running cross_validation 35% fold 2/3",
                         "succeeded done 100% published version 3"]
        assert result.stderr.splitlines()[-1] == "cross-validated metrics"  # the table's title
        assert result.stdout.splitlines()[-1] == "spam v3 (active)"
        assert ["f1", "0.9380", "0.0020", "0.936", "0.940"] in [
            line.split() for line in result.stdout.splitlines()]

    def test_follow_of_a_failed_job_exits_one(self, live: Running) -> None:
        """A job that fails exits 1 with its error on stderr."""
        live.fake.on("Train", job("j7"))
        live.fake.on("WatchJob", [job("j7", pb.JOB_STATE_FAILED, error="column 'x' missing")])
        result = modelctl(live, "--quiet", *self.ARGS, "--follow")
        assert result.exit_code == 1
        assert result.stderr == "error: JOB_FAILED: job j7 failed: column 'x' missing\n"

    def test_follow_json_prints_the_final_job(self, live: Running) -> None:
        """--json --follow prints only the final job as JSON."""
        live.fake.on("Train", job("j7"))
        live.fake.on("WatchJob", [job("j7", pb.JOB_STATE_SUCCEEDED, version=3)])
        data = json.loads(modelctl(live, "--json", *self.ARGS, "--follow").stdout)
        assert (data["id"], data["state"], data["version"]) == ("j7", "succeeded", 3)


class TestJobs:
    def test_watch_follows_an_existing_job(self, live: Running) -> None:
        """watch follows a job by id until it ends."""
        live.fake.on("WatchJob", [job("j5", pb.JOB_STATE_CANCELLED, error="cancelled")])
        result = modelctl(live, "-q", "watch", "j5")
        assert result.exit_code == 1
        assert live.fake.requests("WatchJob")[0].job_id == "j5"
        assert result.stderr == (
            "error: JOB_CANCELLED: job j5 was cancelled; nothing was published\n")

    def test_jobs_limit_reads_only_what_it_shows(self, live: Running) -> None:
        """--limit stops the lazy listing: one page fetched, one row shown."""
        live.fake.on("ListJobs", pb.ListJobsResponse(jobs=[job("j2"), job("j1")],
                                                     next_page_token="more"))
        result = modelctl(live, "jobs", "--limit", "1", "--model", "spam")
        assert [line.split()[0] for line in result.stdout.splitlines()] == ["JOB", "j2"]
        assert live.fake.attempts("ListJobs") == 1
        assert live.fake.requests("ListJobs")[0].model == "spam"

    def test_cancel_prints_the_new_state(self, live: Running) -> None:
        """cancel prints the job's state after the call."""
        live.fake.on("CancelJob", job("j5", pb.JOB_STATE_CANCELLED))
        assert modelctl(live, "cancel", "j5").stdout == "job j5 cancelled\n"


class TestRollback:
    def test_yes_rolls_back_and_prints_previous_to_new(self, live: Running) -> None:
        """rollback --yes sends the target and reason, then prints previous -> new."""
        live.fake.on("Rollback", pb.RollbackResponse(model="spam", previous_version=3,
                                                     active_version=2))
        result = modelctl(live, "rollback", "spam", "--to", "2", "--reason", "bad f1", "--yes")
        assert result.stdout == "spam: v3 -> v2\n"
        request = live.fake.requests("Rollback")[0]
        assert (request.to_version, request.reason, request.expected_active_version) == (
            2, "bad f1", 0)

    def test_expect_active_guards_the_rollback(self, live: Running) -> None:
        """--expect-active is sent as expected_active_version."""
        live.fake.on("Rollback", pb.RollbackResponse(model="spam", previous_version=3,
                                                     active_version=2))
        data = json.loads(modelctl(live, "--json", "rollback", "spam", "--yes",
                                   "--expect-active", "3").stdout)
        assert live.fake.requests("Rollback")[0].expected_active_version == 3
        assert data == {"model": "spam", "previous_version": 3, "active_version": 2}

    @pytest.mark.parametrize(("answer", "calls"), [("y\n", 2), ("n\n", 1)])
    def test_the_prompt_names_both_versions_and_pins_them(
            self, live: Running, monkeypatch: pytest.MonkeyPatch, answer: str,
            calls: int) -> None:
        """On a terminal: a dry run learns the target, the question names it, and the
        rollback that follows is pinned to exactly the versions asked about."""
        monkeypatch.setattr(Output, "interactive", property(lambda self: True))
        live.fake.on("Rollback", pb.RollbackResponse(model="spam", previous_version=3,
                                                     active_version=2))
        result = modelctl(live, "rollback", "spam", "--reason", "r", stdin=answer)
        assert "roll back spam from v3 to v2?" in result.stderr
        requests = live.fake.requests("Rollback")
        assert len(requests) == calls
        assert (requests[0].dry_run, requests[0].to_version) == (True, 0)
        if calls == 2:
            assert (requests[1].dry_run, requests[1].to_version,
                    requests[1].expected_active_version) == (False, 2, 3)
            assert result.stdout == "spam: v3 -> v2\n"
        else:
            assert result.exit_code == 1 and "nothing changed" in result.stderr


class TestPredict:
    REPLY = pb.PredictResponse(model="spam", version=2, task=pb.TASK_CLASSIFICATION,
                               labels=["1", "0"], classes=["0", "1"],
                               probabilities=[0.1, 0.9, 0.8, 0.2])

    def test_csv_rows_drop_the_target_and_keep_categories_text(self, live: Running,
                                                                tmp_path: Path) -> None:
        """The model's target column is left out; its categorical columns stay strings."""
        rows = tmp_path / "rows.csv"
        rows.write_text("a,zip,is_spam\n1.5,01,1\n,02,0\n")
        live.fake.on("GetVersion", version(2, manifest_json=json.dumps(MANIFEST)))
        live.fake.on("Predict", self.REPLY)
        result = modelctl(live, "predict", "spam", str(rows))
        assert result.exit_code == 0
        sent = live.fake.requests("Predict")[0]
        assert sent.WhichOneof("rows") == "records"
        assert [dict(r) for r in sent.records.rows] == [{"a": 1.5, "zip": "01"},
                                                       {"a": None, "zip": "02"}]
        assert [line.split() for line in result.stdout.splitlines()] == [
            ["ROW", "PREDICTION", "PROBABILITY"], ["0", "1", "0.9000"], ["1", "0", "0.8000"]]
        assert result.stderr.splitlines() == ["spam v2 (classification)"]  # which version

    def test_json_from_stdin_and_json_out(self, live: Running) -> None:
        """Rows as a JSON array on stdin; --json output lists predictions in order."""
        live.fake.on("GetVersion", version(2))
        live.fake.on("Predict", self.REPLY)
        result = modelctl(live, "--json", "predict", "spam", "-",
                          stdin='[{"a": 1.0}, {"a": 2.0}]')
        sent = live.fake.requests("Predict")[0]
        assert sent.WhichOneof("rows") == "dense"
        assert list(sent.dense.values) == [1.0, 2.0]
        data = json.loads(result.stdout)
        assert (data["model"], data["version"], data["task"]) == ("spam", 2, "classification")
        assert [p["prediction"] for p in data["predictions"]] == ["1", "0"]


class TestReloadAndHealth:
    def test_reload_shows_models_after_the_rescan(self, live: Running) -> None:
        """reload prints each re-scanned model; --json as {"models": [...]}."""
        live.fake.on("Reload", pb.ReloadResponse(models=status_reply().models))
        data = json.loads(modelctl(live, "--json", "reload", "spam").stdout)
        assert live.fake.requests("Reload")[0].model == "spam"
        assert [m["model"] for m in data["models"]] == ["spam", "fraud"]

    def test_health_prints_serving(self, live: Running) -> None:
        """health prints SERVING and exits 0 for a healthy daemon."""
        result = modelctl(live, "--json", "health")
        assert (result.exit_code, json.loads(result.stdout)) == (
            0, {"service": "", "status": "SERVING"})
