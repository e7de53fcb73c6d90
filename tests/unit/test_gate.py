"""training/gate.py's decisions, from hand-made metrics: no training, no files."""

from __future__ import annotations

from typing import Any

import pytest

from modeld_server.errors import InvalidArgument
from modeld_server.registry.manifest import Manifest
from modeld_server.training.gate import Comparison, Policy, decide, not_comparable, primary_metric
from modeld_server.types import Task


def cv(**means: float) -> dict[str, Any]:
    return {name: {"mean": value, "std": 0.0, "folds": []} for name, value in means.items()}


def compared(metric: str, challenger: float, champion: float, rows: int = 120,
             how: str = "on rows the champion never saw") -> Comparison:
    return Comparison(champion={metric: champion}, challenger={metric: challenger}, rows=rows,
                      how=how)


class TestPrimaryMetric:
    @pytest.mark.parametrize(("task", "classes", "metric"), [
        (Task.CLASSIFICATION, 2, "f1"), (Task.CLASSIFICATION, 3, "f1_macro"),
        (Task.REGRESSION, 0, "rmse"), (Task.ANOMALY_DETECTION, 0, "roc_auc")])
    def test_the_default_follows_the_task(self, task: Task, classes: int, metric: str) -> None:
        assert primary_metric(Policy(), task, classes) == metric

    def test_the_policy_names_its_own(self) -> None:
        assert primary_metric(Policy("accuracy"), Task.CLASSIFICATION, 2) == "accuracy"


class TestDecide:
    def test_a_first_version_passes_on_thresholds_alone(self) -> None:
        decision = decide(Policy(), Task.CLASSIFICATION, 2, cv(f1=0.5), None)
        assert (decision.passed, decision.metric, decision.champion_version) == (True, "f1", 0)
        assert decision.reasons == ["no champion: first version, thresholds only"]

    def test_a_failed_threshold_rejects_even_without_a_champion(self) -> None:
        policy = Policy(thresholds=(("f1", ">=", 0.9), ("accuracy", ">", 0.5)))
        decision = decide(policy, Task.CLASSIFICATION, 2, cv(f1=0.85, accuracy=0.95), None)
        assert decision.passed is False
        assert decision.reasons[:2] == ["f1 0.8500 >= 0.9: FAILED", "accuracy 0.9500 > 0.5: ok"]
        assert decision.thresholds[0] == {"metric": "f1", "op": ">=", "bound": 0.9,
                                          "value": 0.85, "passed": False}

    def test_a_missing_threshold_metric_fails(self) -> None:
        policy = Policy(thresholds=(("roc_auc", ">=", 0.7),))
        decision = decide(policy, Task.CLASSIFICATION, 2, cv(f1=0.9), None)
        assert decision.passed is False
        assert decision.reasons[0] == "roc_auc missing >= 0.7: FAILED"

    def test_a_challenger_within_the_tolerance_passes(self) -> None:
        decision = decide(Policy(tolerance=0.01), Task.CLASSIFICATION, 2, cv(f1=0.9),
                          (3, compared("f1", 0.895, 0.9), ""))
        assert (decision.passed, decision.challenger, decision.champion) == (True, 0.895, 0.9)
        assert (decision.champion_version, decision.rows) == (3, 120)
        assert decision.reasons[-1] == (
            "f1 challenger 0.8950 vs champion v3 0.9000 on the same 120 rows, on rows the "
            "champion never saw (tolerance 0.01): ok")

    def test_a_challenger_worse_by_more_than_the_tolerance_is_rejected(self) -> None:
        decision = decide(Policy(tolerance=0.01), Task.CLASSIFICATION, 2, cv(f1=0.9),
                          (3, compared("f1", 0.88, 0.9), ""))
        assert decision.passed is False
        assert decision.reasons[-1].endswith("(tolerance 0.01): WORSE")

    def test_lower_is_better_for_errors(self) -> None:
        """rmse: a challenger above the champion by more than the tolerance is worse."""
        policy = Policy(tolerance=0.5)
        better = decide(policy, Task.REGRESSION, 0, cv(rmse=3.0), (1, compared("rmse", 3.0, 4.0),
                                                                   ""))
        worse = decide(policy, Task.REGRESSION, 0, cv(rmse=5.0), (1, compared("rmse", 4.6, 4.0),
                                                                  ""))
        edge = decide(policy, Task.REGRESSION, 0, cv(rmse=4.5), (1, compared("rmse", 4.5, 4.0),
                                                                 ""))
        assert (better.passed, worse.passed, edge.passed) == (True, False, True)

    def test_a_champion_that_cannot_be_compared_leaves_thresholds_only(self) -> None:
        decision = decide(Policy(), Task.CLASSIFICATION, 2, cv(f1=0.1),
                          (4, None, "its classes differ"))
        assert (decision.passed, decision.champion_version, decision.champion) == (True, 4, None)
        assert decision.reasons == ["champion v4 not comparable (its classes differ); "
                                    "thresholds only"]

    def test_a_comparison_without_the_primary_metric_is_not_comparable(self) -> None:
        decision = decide(Policy("accuracy"), Task.CLASSIFICATION, 2, cv(accuracy=0.1),
                          (2, compared("f1", 0.1, 0.9), "why"))
        assert decision.passed is True
        assert decision.reasons == ["champion v2 not comparable (why); thresholds only"]

    def test_thresholds_and_the_comparison_must_both_pass(self) -> None:
        policy = Policy(thresholds=(("f1", ">=", 0.95),))
        decision = decide(policy, Task.CLASSIFICATION, 2, cv(f1=0.9),
                          (1, compared("f1", 0.99, 0.9), ""))
        assert decision.passed is False
        assert decision.reasons[-1].endswith(": ok")

    def test_the_decision_as_json_holds_every_field(self) -> None:
        decision = decide(Policy(), Task.CLASSIFICATION, 2, cv(f1=0.9),
                          (1, compared("f1", 0.9, 0.9, how="refit"), ""))
        assert decision.to_json() == {
            "passed": True, "metric": "f1", "challenger": 0.9, "champion": 0.9,
            "champion_version": 1, "rows": 120, "how": "refit", "reasons": decision.reasons,
            "thresholds": []}


class TestNotComparable:
    def manifest(self, **fields: Any) -> Manifest:
        schema = {"numeric": ["a", "b"], "categorical": [], "target": "y"}
        return Manifest.from_json({"version": 1, "task": "classification", "classes": [0, 1],
                                   "schema": schema, **fields})

    class Frame:
        def __init__(self, *columns: str) -> None:
            self.columns = list(columns)

    def test_the_same_task_columns_and_classes_are_comparable(self) -> None:
        frame = self.Frame("a", "b", "y")
        assert not_comparable(self.manifest(), frame, Task.CLASSIFICATION, ["1", "0"]) == ""

    def test_another_task(self) -> None:
        assert not_comparable(self.manifest(), self.Frame("a", "b"), Task.REGRESSION,
                              []) == "it does classification"

    def test_missing_columns_are_named(self) -> None:
        assert not_comparable(self.manifest(), self.Frame("a"), Task.CLASSIFICATION,
                              [0, 1]) == "this dataset lacks its columns ['b']"

    def test_other_classes(self) -> None:
        assert not_comparable(self.manifest(), self.Frame("a", "b"), Task.CLASSIFICATION,
                              [0, 1, 2]) == "its classes differ"


class TestPolicyValidation:
    @pytest.mark.parametrize(("policy", "message"), [
        (Policy(tolerance=-1), "policy.tolerance must be >= 0, got -1"),
        (Policy("f1 score"), "policy.primary_metric 'f1 score' is not a metric name"),
        (Policy(thresholds=(("f1", "=>", 0.5),)),
         "policy.thresholds: operator '=>' for 'f1' is not one of >=, >, <=, <"),
        (Policy(min_training_rows=-1), "policy.min_training_rows must be >= 0, got -1"),
        (Policy(drift=(0.3, 0.2, 0.0, 0.0)),
         "policy.drift_psi_warn 0.3 is above policy.drift_psi_alert 0.2"),
        (Policy(monitor_sample=1.5), "policy.monitor_sample must be between 0 and 1, got 1.5"),
    ])
    def test_a_bad_field_is_named(self, policy: Policy, message: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            policy.validated()
        assert err.value.message == message

    def test_drift_defaults_fill_the_zeros(self) -> None:
        assert Policy(drift=(0.0, 0.3, 0.0, 0.0)).drift_thresholds() == (0.1, 0.3, 0.1, 0.5)
