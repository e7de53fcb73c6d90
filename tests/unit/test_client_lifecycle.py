"""Lifecycle calls (Promote, policies, aliases, schedules) and the TrainSpec options they carry."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

import modeld
from modeld import Policy, RowFilter, Schedule, Threshold, TrainSpec, Validation
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Fail, Running, job, running_fake

UNAVAILABLE = Fail(grpc.StatusCode.UNAVAILABLE, "daemon restarting")
FAST = modeld.RetryPolicy(initial=0.01, maximum=0.02)


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


@pytest.fixture
def client(live: Running) -> Iterator[modeld.Client]:
    with modeld.Client(live.address, timeout=5, retry=FAST) as c:
        yield c


class TestTrainSpec:
    def test_every_option_reaches_the_request(self, live: Running,
                                              client: modeld.Client) -> None:
        """features, drop_columns, filters, validation and calibration are all sent."""
        live.fake.on("Train", job())
        client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost",
                     features=["a", "b"], drop_columns=["id"],
                     filters=[RowFilter.range("a", min=0.0), RowFilter.isin("c", ["x", 1]),
                              RowFilter.dates("day", start="2024-01-01")],
                     validation=Validation(drop_duplicates=True, min_rows=50,
                                           max_malformed_fraction=0.05),
                     calibration="isotonic")
        request = live.fake.requests("Train")[0]
        assert list(request.dataset.features) == ["a", "b"]
        assert list(request.dataset.drop_columns) == ["id"]
        ranged, valued, dated = request.dataset.filters
        assert ranged.range.min == 0.0 and not ranged.range.HasField("max")
        assert list(valued.values.values) == ["x", "1"]
        assert (dated.dates.start, dated.dates.end) == ("2024-01-01", "")
        assert request.validation.drop_duplicates and request.validation.min_rows == 50
        assert request.validation.max_malformed_fraction == 0.05
        assert request.calibration == pb.CALIBRATION_ISOTONIC

    def test_round_trips_through_the_message(self) -> None:
        """TrainSpec -> TrainRequest -> TrainSpec gives the same spec back."""
        spec = TrainSpec("spam", "spambase.csv", target="is_spam", algorithm="xgboost",
                         params={"max_depth": "6"}, folds=3, seed=7,
                         task=modeld.Task.CLASSIFICATION, activate=False,
                         filters=(RowFilter.range("a", max=2.0),),
                         validation=Validation(fail_on_missing_target=True), calibration="auto")
        assert TrainSpec.from_pb(spec.to_pb()) == spec

    def test_unknown_calibration_is_refused(self) -> None:
        """A calibration the daemon does not know fails before anything is sent."""
        with pytest.raises(ValueError, match="calibration must be one of"):
            TrainSpec("spam", "d.csv", calibration="platt")


class TestThreshold:
    @pytest.mark.parametrize(("text", "expected"), [
        ("roc_auc>=0.95", Threshold("roc_auc", ">=", 0.95)),
        ("rmse < 3", Threshold("rmse", "<", 3.0)),
        ("f1>0.9", Threshold("f1", ">", 0.9)),
        ("brier<=0.1", Threshold("brier", "<=", 0.1)),
    ])
    def test_parses_metric_operator_number(self, text: str, expected: Threshold) -> None:
        """Two-character operators are not mistaken for one-character ones."""
        assert Threshold.parse(text) == expected

    def test_malformed_text_is_refused(self) -> None:
        """Text without an operator and a number is a ValueError quoting it."""
        with pytest.raises(ValueError, match="'f1 high' is not metric>=number"):
            Threshold.parse("f1 high")


class TestCalls:
    def test_promote_sends_reason_and_guard_and_is_never_retried(
            self, live: Running, client: modeld.Client) -> None:
        """Promote is a write: one attempt, with the reason and expected active version."""
        live.fake.on("Promote", UNAVAILABLE)
        with pytest.raises(modeld.Unavailable):
            client.promote("spam", 3, reason="gate too strict", expected_active_version=2)
        request = live.fake.requests("Promote")[0]
        assert (request.version, request.reason, request.expected_active_version) == (
            3, "gate too strict", 2)
        assert live.fake.attempts("Promote") == 1

    def test_policy_round_trip(self, live: Running, client: modeld.Client) -> None:
        """set_policy sends the policy; get_policy (a read) retries and reads it back."""
        policy = Policy("spam", primary_metric="roc_auc", tolerance=0.02,
                        thresholds=(Threshold("roc_auc", ">=", 0.95),))
        live.fake.on("SetPolicy", lambda request, context: request.policy)
        live.fake.on("GetPolicy", UNAVAILABLE, policy.to_pb())
        assert client.set_policy(policy) == policy
        assert client.get_policy("spam") == policy
        assert live.fake.attempts("GetPolicy") == 2

    def test_alias_guard_zero_is_sent(self, live: Running, client: modeld.Client) -> None:
        """expected_version=0 (create only) is sent as set, not dropped as a default."""
        live.fake.on("SetAlias", pb.Alias(model="spam", alias="challenger", version=4))
        alias = client.set_alias("spam", "challenger", 4, expected_version=0)
        request = live.fake.requests("SetAlias")[0]
        assert request.HasField("expected_version") and request.expected_version == 0
        assert (alias.alias, alias.version) == ("challenger", 4)

    def test_schedule_carries_its_train_spec(self, live: Running,
                                             client: modeld.Client) -> None:
        """set_schedule sends the spec each run trains; the reply reads back as a Schedule."""
        spec = TrainSpec("spam", "spambase.csv", target="is_spam", algorithm="xgboost", folds=3)
        live.fake.on("SetSchedule", lambda request, context: request.schedule)
        got = client.set_schedule(Schedule("spam", spec, cron="0 3 * * *", min_new_rows=100))
        assert got.train == spec
        assert (got.cron, got.min_new_rows, got.next_run_at) == ("0 3 * * *", 100, None)
        assert live.fake.requests("SetSchedule")[0].schedule.train.cv_folds == 3

    def test_predict_by_alias(self, live: Running, client: modeld.Client) -> None:
        """predict(alias=...) names the version by alias."""
        live.fake.on("Predict", pb.PredictResponse(task=pb.TASK_REGRESSION, values=[1.0]))
        client.predict("price", [{"a": 1.0}], alias="challenger")
        assert live.fake.requests("Predict")[0].alias == "challenger"
