"""modelctl's lifecycle commands: promote, policy, alias, schedule, and train's data options."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from typer.testing import CliRunner, Result

from modeld._cli.inputs import InputError, parse_filter
from modeld.cli import app
from modeld.options import RowFilter
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Fail, Running, job, running_fake

runner = CliRunner()
TRAIN = ("--data", "spambase.csv", "--target", "is_spam", "--algorithm", "xgboost")


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


def modelctl(live: Running, *args: str) -> Result:
    return runner.invoke(app, ["--address", live.address, *args])


def echo(field: str) -> object:
    """An outcome that answers with the request's `field` (what a store-and-return RPC does)."""
    return lambda request, context: getattr(request, field)


class TestParseFilter:
    @pytest.mark.parametrize(("text", "expected"), [
        ("age=18..65", RowFilter.range("age", 18.0, 65.0)),
        ("age=..65", RowFilter.range("age", None, 65.0)),
        ("country=FR, DE", RowFilter.isin("country", ["FR", "DE"])),
        ("grade=a..c", RowFilter.isin("grade", ["a..c"])),
        ("day@2024-01-01..2024-06-30", RowFilter.dates("day", "2024-01-01", "2024-06-30")),
    ])
    def test_the_three_forms(self, text: str, expected: RowFilter) -> None:
        """Numbers around .. make a range, commas a value list, @ a date range."""
        assert parse_filter(text) == expected

    @pytest.mark.parametrize("text", ["age", "=5", "day@2024", "x="])
    def test_other_text_is_refused(self, text: str) -> None:
        """Anything else is an InputError that shows the accepted forms."""
        with pytest.raises(InputError, match=r"is not col=LO\.\.HI, col=A,B or col@START\.\.END"):
            parse_filter(text)


class TestTrainOptions:
    def test_data_and_validation_options_reach_the_request(self, live: Running) -> None:
        """--feature, --drop-column, --filter, --calibration and validation flags are sent."""
        live.fake.on("Train", job("j1"))
        result = modelctl(live, "train", "spam", *TRAIN, "--feature", "a", "--feature", "b",
                          "--drop-column", "id", "--filter", "a=0..1", "--calibration", "auto",
                          "--drop-duplicates", "--min-rows", "100",
                          "--max-malformed-fraction", "0.05")
        assert result.exit_code == 0, result.stderr
        request = live.fake.requests("Train")[0]
        assert list(request.dataset.features) == ["a", "b"]
        assert list(request.dataset.drop_columns) == ["id"]
        assert (request.dataset.filters[0].range.min, request.dataset.filters[0].range.max) == (
            0.0, 1.0)
        assert request.calibration == pb.CALIBRATION_AUTO
        assert request.validation.drop_duplicates and request.validation.min_rows == 100
        assert request.validation.max_malformed_fraction == 0.05

    def test_malformed_filter_is_a_usage_error(self, live: Running) -> None:
        """A --filter in none of the forms exits 2 before any call."""
        result = modelctl(live, "train", "spam", *TRAIN, "--filter", "age")
        assert result.exit_code == 2
        assert "Invalid value for --filter" in result.stderr
        assert live.fake.calls == []


class TestPromote:
    def test_promote_needs_a_reason_and_prints_previous_to_new(self, live: Running) -> None:
        """promote sends version and reason; prints previous -> new like rollback."""
        live.fake.on("Promote", pb.RollbackResponse(model="spam", previous_version=2,
                                                    active_version=4))
        result = modelctl(live, "promote", "spam", "4", "--reason", "gate too strict", "--yes")
        assert result.stdout == "spam: v2 -> v4\n"
        request = live.fake.requests("Promote")[0]
        assert (request.version, request.reason) == (4, "gate too strict")

    def test_promote_without_reason_is_a_usage_error(self, live: Running) -> None:
        """The reason is required."""
        assert modelctl(live, "promote", "spam", "4", "--yes").exit_code == 2


class TestPolicy:
    def test_set_replaces_the_policy_and_shows_it(self, live: Running) -> None:
        """policy set sends thresholds and tolerance; the reply is shown as facts."""
        live.fake.on("SetPolicy", echo("policy"))
        result = modelctl(live, "policy", "set", "spam", "--primary-metric", "roc_auc",
                          "--tolerance", "0.02", "--threshold", "roc_auc>=0.95",
                          "--threshold", "brier<0.1")
        assert result.exit_code == 0, result.stderr
        sent = live.fake.requests("SetPolicy")[0].policy
        assert [(t.metric, t.op, t.value) for t in sent.thresholds] == [
            ("roc_auc", ">=", 0.95), ("brier", "<", 0.1)]
        assert "thresholds      roc_auc >= 0.95, brier < 0.1" in result.stdout

    def test_bad_threshold_is_a_usage_error(self, live: Running) -> None:
        """A threshold that is not metric-operator-number exits 2."""
        result = modelctl(live, "policy", "set", "spam", "--threshold", "roc_auc high")
        assert result.exit_code == 2
        assert live.fake.calls == []

    def test_show_as_json(self, live: Running) -> None:
        """policy show --json uses the Policy field names."""
        live.fake.on("GetPolicy", pb.Policy(model="spam", disabled=True))
        data = json.loads(modelctl(live, "--json", "policy", "show", "spam").stdout)
        assert data == {"model": "spam", "primary_metric": "", "tolerance": None,
                        "thresholds": [], "disabled": True, "max_age_seconds": 0.0,
                        "min_training_rows": 0, "drift_psi_warn": 0.0, "drift_psi_alert": 0.0,
                        "drift_js_alert": 0.0, "drift_share_alert": 0.0,
                        "monitor_sample": None, "dask_above_bytes": 0}


class TestAlias:
    def test_set_with_a_guard(self, live: Running) -> None:
        """alias set sends the expected version and prints model@alias -> version."""
        live.fake.on("SetAlias", pb.Alias(model="spam", alias="challenger", version=4))
        result = modelctl(live, "alias", "set", "spam", "challenger", "4", "--expect", "3")
        assert result.stdout == "spam@challenger -> v4\n"
        assert live.fake.requests("SetAlias")[0].expected_version == 3

    def test_predict_by_alias_reads_that_versions_schema(self, live: Running) -> None:
        """predict --alias resolves the alias for the schema, then sends the alias."""
        live.fake.on("GetStatus", pb.GetStatusResponse(models=[pb.ModelStatus(
            model="spam", aliases={"challenger": 4})]))
        live.fake.on("GetVersion", pb.Version(model="spam", version=4))
        live.fake.on("Predict", pb.PredictResponse(model="spam", version=4,
                                                   task=pb.TASK_REGRESSION, values=[1.0]))
        result = runner.invoke(app, ["--address", live.address, "predict", "spam", "-",
                                     "--alias", "challenger"], input='[{"a": 1}]')
        assert result.exit_code == 0, result.stderr
        assert live.fake.requests("GetVersion")[0].version == 4
        assert live.fake.requests("Predict")[0].alias == "challenger"

    def test_delete(self, live: Running) -> None:
        """alias delete removes the alias."""
        live.fake.on("DeleteAlias", pb.Alias(model="spam", alias="challenger"))
        assert modelctl(live, "alias", "delete", "spam", "challenger").stdout == (
            "spam@challenger removed\n")


class TestSchedule:
    def test_set_sends_triggers_and_the_train_spec(self, live: Running) -> None:
        """schedule set takes train's options plus cron, interval and data triggers."""
        live.fake.on("SetSchedule", echo("schedule"))
        result = modelctl(live, "--json", "schedule", "set", "spam", *TRAIN, "--cron",
                          "0 3 * * *", "--min-new-rows", "500", "--folds", "3")
        assert result.exit_code == 0, result.stderr
        sent = live.fake.requests("SetSchedule")[0].schedule
        assert (sent.cron, sent.min_new_rows, sent.train.cv_folds) == ("0 3 * * *", 500, 3)
        data = json.loads(result.stdout)
        assert data["train"]["algorithm"] == "xgboost" and data["cron"] == "0 3 * * *"

    def test_show_without_schedule_is_exit_one(self, live: Running) -> None:
        """A model without a schedule is NOT_FOUND from the daemon: exit 1."""
        live.fake.on("GetSchedule", Fail(grpc.StatusCode.NOT_FOUND, "model 'spam' has no schedule"))
        result = modelctl(live, "schedule", "show", "spam")
        assert result.exit_code == 1
        assert result.stderr == "error: NOT_FOUND: model 'spam' has no schedule\n"
