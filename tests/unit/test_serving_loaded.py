"""A loaded version predicts, or refuses values it cannot take as the caller's bad input."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from modeld_server import fastpaths
from modeld_server.artifacts import Fitted
from modeld_server.errors import InvalidArgument
from modeld_server.registry.manifest import Manifest
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
    return LoadedModel("m", 1, Manifest.from_json({"version": 1, **manifest}),
                       Fitted(preprocess, estimator))


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
        monkeypatch.setattr(model, "_linear", None)  # the library path, patched below
        monkeypatch.setattr(model._estimator, "predict_proba",
                            lambda x: np.full((len(x), 2), np.nan))
        with pytest.raises(InvalidArgument) as err:
            model.predict(np.array([[0.5, 4e307]]))
        assert err.value.message == f"row 0 column 'x1' is 4e+307: {TOO_LARGE}"

    def test_other_value_errors_stay_internal(self) -> None:
        """A matrix of the wrong width is the daemon's bug, not the caller's input."""
        with pytest.raises(ValueError, match=r"broadcast|features"):
            loaded("logistic_regression").predict(np.zeros((1, 3)))


class TestFoldedLogisticRegression:
    """Predict computes logistic regression's pipeline as plain NumPy; it must agree."""

    @pytest.mark.parametrize("classes", [2, 3])
    @pytest.mark.parametrize("wrapped", [False, True], ids=["pipeline", "column-transformer"])
    def test_probabilities_equal_the_fitted_pipeline(self, classes: int, wrapped: bool) -> None:
        from sklearn.compose import ColumnTransformer

        rng = np.random.default_rng(7)
        x = rng.normal(size=(300, 5)) * [1, 10, 100, 0.1, 5] + [0, 3, -50, 1, 0]
        y = (x[:, 0] + x[:, 1] / 10 > 0).astype(int) + (classes == 3) * (x[:, 3] > 1)
        x[rng.random(x.shape) < 0.05] = np.nan  # missing values, imputed by the median
        spec = get_algorithm("logistic_regression", Task.CLASSIFICATION)
        preprocess = build_preprocessor(spec, list(range(5)), [])
        if wrapped:  # artifacts saved before the ColumnTransformer was dropped
            preprocess = ColumnTransformer([("numeric", preprocess, list(range(5)))])
        preprocess.fit(x)
        estimator = build_estimator(spec, Task.CLASSIFICATION, {}, 0).fit(
            preprocess.transform(x), y)
        manifest: dict[str, Any] = {
            "task": "classification", "algorithm": "logistic_regression",
            "classes": [str(c) for c in range(classes)],
            "schema": {"numeric": [f"x{i}" for i in range(5)], "categorical": [], "target": "y"}}
        model = LoadedModel("m", 1, Manifest.from_json({"version": 1, **manifest}),
                            Fitted(preprocess, estimator))
        assert model._linear is not None  # the folded path is the one under test
        rows = np.vstack([x, rng.normal(size=(50, 5)) * 1000, np.full((1, 5), np.nan)])
        got = model.predict(rows)
        want = estimator.predict_proba(preprocess.transform(rows))
        np.testing.assert_allclose(got.probabilities, want, rtol=0, atol=1e-12)
        assert got.labels == [str(c) for c in estimator.predict(preprocess.transform(rows))]

    @pytest.mark.parametrize("fast", [True, False], ids=["folded", "library"])
    @pytest.mark.parametrize("classes", [2, 3])
    def test_arithmetic_that_overflows_answers_as_scikit_learn_without_a_warning(
            self, classes: int, fast: bool) -> None:
        """1e308 is finite, but its margins overflow (matmul, or the softmax's subtraction):
        the folded path and scikit-learn's own (fast paths off) answer what scikit-learn
        answers, and numpy warns of nothing into the daemon's log (a NaN answer is refused
        as INVALID_ARGUMENT: test_fuzz.py)."""
        rng = np.random.default_rng(3)
        x = rng.normal(size=(60, 2))
        y = (x[:, 0] > 0).astype(int) + (classes == 3) * (x[:, 1] > 0.5)
        spec = get_algorithm("logistic_regression", Task.CLASSIFICATION)
        preprocess = build_preprocessor(spec, [0, 1], []).fit(x)
        estimator = build_estimator(spec, Task.CLASSIFICATION, {}, 0).fit(
            preprocess.transform(x), y)
        manifest: dict[str, Any] = {
            "task": "classification", "algorithm": "logistic_regression",
            "classes": [str(c) for c in range(classes)],
            "schema": {"numeric": ["x0", "x1"], "categorical": [], "target": "y"}}
        fastpaths.set_enabled(fast)
        try:
            model = LoadedModel("m", 1, Manifest.from_json({"version": 1, **manifest}),
                                Fitted(preprocess, estimator))
        finally:
            fastpaths.set_enabled(True)
        assert (model._linear is not None) == fast
        for rows in (np.array([[1e308, 0.0], [-1e308, 1e308]]), np.array([[1e308, 1e308]])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the library's own warns
                want = estimator.predict_proba(preprocess.transform(rows))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                if np.isfinite(want).all():
                    np.testing.assert_array_equal(model.predict(rows).probabilities, want)
                else:
                    with pytest.raises(InvalidArgument):
                        model.predict(rows)

    def test_other_preprocessing_keeps_the_library_path(self) -> None:
        """Categorical columns (one-hot) are not folded."""
        spec = get_algorithm("logistic_regression", Task.CLASSIFICATION)
        x = np.array([[0.1, "a"], [0.9, "b"], [0.2, "a"], [0.8, "b"]], dtype=object)
        preprocess = build_preprocessor(spec, [0], [1]).fit(x)
        estimator = build_estimator(spec, Task.CLASSIFICATION, {}, 0).fit(
            preprocess.transform(x), [0, 1, 0, 1])
        manifest: dict[str, Any] = {
            "task": "classification", "algorithm": "logistic_regression", "classes": ["0", "1"],
            "schema": {"numeric": ["n"], "categorical": ["c"], "target": "y"}}
        model = LoadedModel("m", 1, Manifest.from_json({"version": 1, **manifest}),
                            Fitted(preprocess, estimator))
        assert model._linear is None
