"""A loaded version predicts, or refuses values it cannot take as the caller's bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modeld_server.artifacts import Fitted
from modeld_server.errors import InvalidArgument
from modeld_server.serving.loaded import LoadedModel
from modeld_server.training.estimators import build_estimator, build_preprocessor, get_algorithm
from modeld_server.types import Task

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])
Y = np.array([0, 1, 0, 1, 0, 1])
TOO_LARGE = ("values this large overflow inside this model (scaled, or cast to float32); "
             "keep numbers within +-3.4e+38")


def loaded(algorithm: str, task: Task = Task.CLASSIFICATION) -> LoadedModel:
    """A two-feature model fitted on six rows, as the job runner would leave it."""
    spec = get_algorithm(algorithm, task)
    preprocess = build_preprocessor(spec, [0, 1], []).fit(X)
    estimator = build_estimator(spec, task, {}, 0).fit(preprocess.transform(X), Y)
    manifest: dict[str, Any] = {
        "task": task.value, "algorithm": algorithm, "classes": ["a", "b"],
        "schema": {"numeric": ["x0", "x1"], "categorical": [], "target": "y"}}
    return LoadedModel("m", 1, manifest, Fitted(preprocess, estimator))


class TestPredict:
    def test_ordinary_rows_predict(self) -> None:
        prediction = loaded("logistic_regression").predict(X[:2])
        assert prediction.labels == ["a", "b"]

    @pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
    def test_a_value_that_overflows_once_scaled_is_invalid_argument(self) -> None:
        """1.7e308 is finite, but the scaler makes it infinite: once INTERNAL."""
        rows = np.array([[0.5, 0.5], [0.5, 1.7e308]])
        with pytest.raises(InvalidArgument) as err:
            loaded("logistic_regression").predict(rows)
        assert err.value.message == f"row 1 column 'x1' is 1.7e+308: {TOO_LARGE}"

    @pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
    def test_a_value_beyond_float32_is_invalid_argument_for_forests(self) -> None:
        """Tree ensembles cast to float32, where 1e39 is infinite."""
        with pytest.raises(InvalidArgument) as err:
            loaded("random_forest").predict(np.array([[-1e39, 0.5]]))
        assert err.value.message == f"row 0 column 'x0' is -1e+39: {TOO_LARGE}"

    def test_an_answer_that_is_not_a_number_is_refused(self, monkeypatch: Any) -> None:
        """A model whose arithmetic overflowed to NaN (inf - inf in a linear margin) must
        not answer OK with NaN probabilities and a meaningless label."""
        model = loaded("logistic_regression")
        monkeypatch.setattr(model._estimator, "predict_proba",
                            lambda x: np.full((len(x), 2), np.nan))
        with pytest.raises(InvalidArgument) as err:
            model.predict(np.array([[0.5, 4e307]]))
        assert err.value.message == f"row 0 column 'x1' is 4e+307: {TOO_LARGE}"

    def test_other_value_errors_stay_internal(self) -> None:
        """A matrix of the wrong width is the daemon's bug, not the caller's input."""
        with pytest.raises(ValueError, match="features"):
            loaded("logistic_regression").predict(np.zeros((1, 3)))
