"""modelctl and freshness: policy set --max-age/--min-training-rows, status marks warnings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from modeld._cli.cmd_lifecycle import parse_duration
from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Running, running_fake

runner = CliRunner()
WARNINGS = [pb.StatusWarning(kind="max_age",
                             message="trained 31.5d ago, older than the policy's max_age 30.0d"),
            pb.StatusWarning(kind="dataset_changed",
                             message="dataset 'd.csv' is no longer on disk")]


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


def modelctl(live: Running, *args: str) -> Result:
    return runner.invoke(app, ["--address", live.address, *args])


def status_reply() -> pb.GetStatusResponse:
    return pb.GetStatusResponse(
        daemon=pb.DaemonStatus(build_version="0.1.0", uptime_seconds=75, registry_root="/r"),
        models=[pb.ModelStatus(model="old", active_version=3, loaded_version=3,
                               state=pb.LOAD_STATE_READY, algorithm="xgboost",
                               version_count=3, warnings=WARNINGS),
                pb.ModelStatus(model="new", active_version=1, loaded_version=1,
                               state=pb.LOAD_STATE_READY, algorithm="ridge", version_count=1)])


class TestStatusWarnings:
    def test_a_model_with_warnings_is_marked_and_each_warning_listed(self,
                                                                      live: Running) -> None:
        live.fake.on("GetStatus", status_reply())
        result = modelctl(live, "status")
        assert result.exit_code == 0  # warnings, not failures
        lines = result.stdout.splitlines()
        assert lines[2].split()[:3] == ["old", "!", "v3"]
        assert lines[3].split()[:2] == ["new", "v1"]
        assert lines[4:] == [
            "! old v3: trained 31.5d ago, older than the policy's max_age 30.0d [max_age]",
            "! old v3: dataset 'd.csv' is no longer on disk [dataset_changed]"]

    def test_json_lists_warnings_by_kind(self, live: Running) -> None:
        live.fake.on("GetStatus", status_reply())
        data = json.loads(modelctl(live, "--json", "status").stdout)
        assert [w["kind"] for w in data["models"][0]["warnings"]] == ["max_age",
                                                                      "dataset_changed"]
        assert data["models"][1]["warnings"] == []


class TestPolicySet:
    def test_max_age_and_min_training_rows_are_sent_and_shown(self, live: Running) -> None:
        reply = pb.Policy(model="spam", min_training_rows=500)
        reply.max_age.FromSeconds(30 * 86400)
        live.fake.on("SetPolicy", reply)
        result = modelctl(live, "policy", "set", "spam", "--max-age", "30d",
                          "--min-training-rows", "500")
        assert result.exit_code == 0, result.output
        sent = live.fake.requests("SetPolicy")[0].policy
        assert (sent.max_age.seconds, sent.max_age.nanos, sent.min_training_rows) == (
            2592000, 0, 500)
        assert "max age         30d0h" in result.stdout
        assert "min rows        500" in result.stdout

    def test_without_them_nothing_is_set(self, live: Running) -> None:
        live.fake.on("SetPolicy", pb.Policy(model="spam"))
        modelctl(live, "policy", "set", "spam")
        sent = live.fake.requests("SetPolicy")[0].policy
        assert not sent.HasField("max_age") and sent.min_training_rows == 0

    @pytest.mark.parametrize("value", ["soon", "-1d", "nan", "inf"])
    def test_a_bad_max_age_is_a_usage_error(self, live: Running, value: str) -> None:
        result = modelctl(live, "policy", "set", "spam", "--max-age", value)
        assert result.exit_code == 2
        assert live.fake.calls == []


@pytest.mark.parametrize(("text", "seconds"), [
    ("30d", 2592000.0), ("12h", 43200.0), ("90m", 5400.0), ("45s", 45.0), ("2w", 1209600.0),
    ("3600", 3600.0), ("0", 0.0), ("1.5D", 129600.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
