"""Hyperparameter strings: parsed as JSON literals, bounded in depth, capped for the check fit."""

from __future__ import annotations

import time

import pytest

from modeld_server.errors import InvalidArgument
from modeld_server.training.estimators import check_params, get_algorithm
from modeld_server.training.params import MAX_DEPTH, bounded_for_check, parse_param, parse_params
from modeld_server.types import Task

TOO_DEEP = f"the value nests lists or objects more than {MAX_DEPTH} levels deep"


class TestDepth:
    @pytest.mark.parametrize("raw", [
        "[" * 5000 + "]" * 5000,  # RecursionError inside the JSON parser
        '{"a": ' * 3000 + "1" + "}" * 3000,
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),  # parses, but deeper than allowed
    ])
    def test_a_value_nested_too_deep_is_refused_naming_the_param(self, raw: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            parse_params({"max_depth": "3", "C": raw})
        assert err.value.message == f"params.C: {TOO_DEEP}"

    def test_the_deepest_allowed_value_parses(self) -> None:
        raw = "[" * MAX_DEPTH + "]" * MAX_DEPTH
        assert parse_param(raw) is not None

    def test_a_long_param_name_is_cut_in_the_message(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            parse_params({"n" * 1000: "[" * 5000})
        assert err.value.message == f"params.{'n' * 80}... (1000 characters): {TOO_DEEP}"

    def test_unbalanced_brackets_stay_a_string_unless_deeper_than_the_parser_goes(self) -> None:
        """Not JSON: the estimator judges the string, as before; but the parser recurses
        before it sees the end, so thousands of brackets are refused all the same."""
        assert parse_param("[[[[") == "[[[["
        with pytest.raises(InvalidArgument, match=TOO_DEEP):
            parse_param("[" * 5000)


class TestBoundedForCheck:
    def test_xgboost_sizes_above_their_cap_are_capped(self) -> None:
        params = {"num_parallel_tree": "10000", "n_estimators": "1", "max_depth": "100",
                  "max_bin": "100000", "n_jobs": "64", "learning_rate": "0.3"}
        assert bounded_for_check("xgboost", params) == {
            "num_parallel_tree": "2", "n_estimators": "1", "max_depth": "6", "max_bin": "16",
            "n_jobs": "1", "learning_rate": "0.3"}

    def test_the_request_keeps_its_values(self) -> None:
        params = {"num_parallel_tree": "10000"}
        bounded_for_check("xgboost", params)
        assert params == {"num_parallel_tree": "10000"}

    def test_the_check_runs_on_one_thread_unless_asked_otherwise(self) -> None:
        assert bounded_for_check("xgboost", {}) == {"n_jobs": "1"}
        assert bounded_for_check("xgboost", {"n_jobs": "-1"}) == {"n_jobs": "-1"}

    @pytest.mark.parametrize("raw", ["-5", "0", "2.5", "1e9", "true", "null", "many",
                                     str(2**31), str(2**63), "[10000]"])
    def test_values_the_estimator_must_judge_are_left_as_sent(self, raw: str) -> None:
        """Negative, float, bool, string or beyond 32 bits: XGBoost refuses them at once,
        quoting what the user wrote, so the cap must not hide them."""
        assert bounded_for_check("xgboost", {"num_parallel_tree": raw}) == {
            "num_parallel_tree": raw, "n_jobs": "1"}

    def test_algorithms_whose_check_does_not_fit_are_untouched(self) -> None:
        """scikit-learn checks constraints without fitting; a cap could hide a bound
        (HistGradientBoosting's max_bins <= 255)."""
        params = {"n_estimators": "100000", "max_bins": "1000"}
        for algorithm in ("random_forest", "hist_gradient_boosting", "isolation_forest"):
            assert bounded_for_check(algorithm, params) == params

    def test_the_check_of_a_huge_forest_takes_a_fraction_of_a_second(self) -> None:
        """num_parallel_tree=10000 trains ten thousand trees: about 14 s unbounded."""
        xgboost = get_algorithm("xgboost", Task.CLASSIFICATION)
        check_params(xgboost, Task.CLASSIFICATION, {}, 42)  # imports and warms up
        started = time.perf_counter()
        check_params(xgboost, Task.CLASSIFICATION,
                     bounded_for_check("xgboost", {"num_parallel_tree": "10000"}), 42)
        assert time.perf_counter() - started < 1.0

    def test_the_check_still_refuses_bad_values(self) -> None:
        xgboost = get_algorithm("xgboost", Task.CLASSIFICATION)
        with pytest.raises(InvalidArgument, match="num_parallel_tree should be greater equal"):
            check_params(xgboost, Task.CLASSIFICATION,
                         bounded_for_check("xgboost", {"num_parallel_tree": "0"}), 42)
