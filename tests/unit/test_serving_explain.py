"""Explanations: per-row contributions in the user's column names that add up to the margin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modeld_server.artifacts import Fitted
from modeld_server.errors import FailedPrecondition
from modeld_server.registry.manifest import Manifest
from modeld_server.serving.loaded import LoadedModel
from modeld_server.training.estimators import build_estimator, build_preprocessor, get_algorithm
from modeld_server.types import Task

COLUMNS = ("size", "weight", "colour")


def frame(rows: int = 240, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric columns (with gaps) and one categorical, as FeatureSchema orders them;
    a score that depends on all three."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, 3), dtype=object)
    size = rng.normal(10, 3, rows)
    weight = rng.normal(0, 1, rows)
    weight[::17] = np.nan
    colour = rng.choice(["red", "green", "blue"], rows)
    matrix[:, 0], matrix[:, 1], matrix[:, 2] = size, weight, colour
    score = (size - 10) / 3 + np.nan_to_num(weight) + (colour == "red") * 1.5
    return matrix, score


def fitted_model(algorithm: str, task: Task, classes: int = 0,
                 params: dict[str, str] | None = None) -> tuple[LoadedModel, np.ndarray]:
    """A model over (size, weight, colour) fitted as the job runner does; also its rows."""
    matrix, score = frame()
    y: np.ndarray = score
    labels: list[str] = []
    if classes:
        edges = np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])
        y = np.searchsorted(edges, score)
        labels = [f"c{k}" for k in range(classes)]
    spec = get_algorithm(algorithm, task)
    preprocess = build_preprocessor(spec, [0, 1], [2]).fit(matrix)
    estimator = build_estimator(spec, task, params or {}, 0).fit(preprocess.transform(matrix), y)
    manifest: dict[str, Any] = {
        "task": task.value, "algorithm": algorithm, "classes": labels,
        "schema": {"numeric": ["size", "weight"], "categorical": ["colour"], "target": "y"}}
    loaded = LoadedModel("m", 4, Manifest.from_json({"version": 4, **manifest}),
                         Fitted(preprocess, estimator))
    return loaded, matrix[:25]


def one_hot_sums(preprocess: Any, per_column: np.ndarray) -> np.ndarray:
    """The test's own mapping: size, weight, then colour's three one-hot columns summed."""
    assert per_column.shape[1] == 2 + len(preprocess.transformers_[1][1][-1].categories_[0])
    return np.column_stack((per_column[:, 0], per_column[:, 1], per_column[:, 2:].sum(axis=1)))


class TestXGBoost:
    """Against the booster's own pred_contribs and output_margin, computed here."""

    def booster_outputs(self, model: LoadedModel, rows: np.ndarray) -> tuple[Any, Any, Any]:
        import xgboost

        preprocess = model._fitted.preprocess
        data = xgboost.DMatrix(preprocess.transform(rows).astype(np.float64), missing=np.nan)
        booster = model._estimator.get_booster()
        return (preprocess, booster.predict(data, pred_contribs=True),
                booster.predict(data, output_margin=True))

    def test_binary_contributions_are_the_boosters_summed_back_to_columns(self) -> None:
        """Log-odds of the second class; colour's one-hot contributions add into 'colour'."""
        model, rows = fitted_model("xgboost", Task.CLASSIFICATION, 2, {"n_estimators": "30"})
        preprocess, contribs, margin = self.booster_outputs(model, rows)
        got = model.explain(rows)
        assert got.columns == COLUMNS
        assert got.class_labels == ["c1"] * len(rows)
        np.testing.assert_allclose(got.margins, margin, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.base, contribs[:, -1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.contributions, one_hot_sums(preprocess, contribs[:, :-1]),
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.base + got.contributions.sum(axis=1), margin,
                                   rtol=0, atol=1e-5)
        assert np.abs(got.contributions[:, 2]).max() > 0.01  # colour matters: the test bites

    def test_multiclass_explains_the_predicted_class(self) -> None:
        model, rows = fitted_model("xgboost", Task.CLASSIFICATION, 3, {"n_estimators": "20"})
        preprocess, contribs, margin = self.booster_outputs(model, rows)
        predicted = margin.argmax(axis=1)
        got = model.explain(rows)
        assert got.class_labels == model.predict(rows).labels
        assert len(set(got.class_labels)) == 3
        picked = contribs[np.arange(len(rows)), predicted]
        np.testing.assert_allclose(got.margins, margin[np.arange(len(rows)), predicted],
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.base, picked[:, -1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.contributions, one_hot_sums(preprocess, picked[:, :-1]),
                                   rtol=0, atol=1e-6)

    def test_regression_margin_is_the_prediction(self) -> None:
        model, rows = fitted_model("xgboost", Task.REGRESSION, params={"n_estimators": "30"})
        preprocess, contribs, margin = self.booster_outputs(model, rows)
        got = model.explain(rows)
        assert got.class_labels == [""] * len(rows)
        np.testing.assert_allclose(got.margins, margin, rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.margins, model.predict(rows).values, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.contributions, one_hot_sums(preprocess, contribs[:, :-1]),
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.base + got.contributions.sum(axis=1), margin,
                                   rtol=0, atol=1e-5)

    def test_all_numeric_model_uses_the_saved_pipeline(self) -> None:
        """No categorical column: Predict skips the preprocessor, explain still works."""
        import xgboost

        rng = np.random.default_rng(0)
        x = rng.normal(size=(100, 3))
        spec = get_algorithm("xgboost", Task.REGRESSION)
        preprocess = build_preprocessor(spec, [0, 1, 2], []).fit(x)
        estimator = build_estimator(spec, Task.REGRESSION, {"n_estimators": "10"}, 0).fit(
            x, x[:, 0] * 2 + x[:, 2])
        manifest: dict[str, Any] = {
            "task": "regression", "algorithm": "xgboost", "classes": [],
            "schema": {"numeric": ["a", "b", "c"], "categorical": [], "target": "y"}}
        model = LoadedModel("m", 1, Manifest.from_json({"version": 1, **manifest}),
                            Fitted(preprocess, estimator))
        got = model.explain(x[:5])
        expected = estimator.get_booster().predict(xgboost.DMatrix(x[:5]), pred_contribs=True)
        assert got.columns == ("a", "b", "c")
        np.testing.assert_allclose(got.contributions, expected[:, :-1], rtol=0, atol=1e-6)


class TestLinear:
    """Coefficient x standardized value; the base is the intercept."""

    @pytest.mark.parametrize("classes", [2, 3])
    def test_logistic_regression_adds_up_to_decision_function(self, classes: int) -> None:
        model, rows = fitted_model("logistic_regression", Task.CLASSIFICATION, classes)
        estimator, preprocess = model._estimator, model._fitted.preprocess
        x = preprocess.transform(rows)
        decision = estimator.decision_function(x)
        got = model.explain(rows)
        if classes == 2:
            margin, coef, base = decision, estimator.coef_[0], estimator.intercept_[0]
            assert got.class_labels == ["c1"] * len(rows)
            per_column = x * coef
        else:
            k = decision.argmax(axis=1)
            margin = decision[np.arange(len(rows)), k]
            base = estimator.intercept_[k]
            per_column = x * estimator.coef_[k]
            assert got.class_labels == model.predict(rows).labels
        np.testing.assert_allclose(got.margins, margin, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.base, base, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.base + got.contributions.sum(axis=1), margin,
                                   rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.contributions, one_hot_sums(preprocess, per_column),
                                   rtol=0, atol=1e-12)

    def test_ridge_adds_up_to_the_prediction(self) -> None:
        model, rows = fitted_model("ridge", Task.REGRESSION)
        got = model.explain(rows)
        predicted = model.predict(rows).values
        np.testing.assert_allclose(got.base, model._estimator.intercept_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.base + got.contributions.sum(axis=1), predicted,
                                   rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.margins, predicted, rtol=0, atol=1e-9)

    def test_a_numeric_value_at_its_training_mean_contributes_nothing(self) -> None:
        model, rows = fitted_model("ridge", Task.REGRESSION)
        row = rows[:1].copy()
        row[0, 0] = model._fitted.preprocess.transformers_[0][1][-1].mean_[0]
        assert model.explain(row).contributions[0, 0] == pytest.approx(0.0, abs=1e-12)


class TestOtherAlgorithms:
    @pytest.mark.parametrize(("algorithm", "task"), [
        ("random_forest", Task.CLASSIFICATION), ("hist_gradient_boosting", Task.REGRESSION)])
    def test_failed_precondition_names_the_algorithm(self, algorithm: str, task: Task) -> None:
        classes = 2 if task is Task.CLASSIFICATION else 0
        model, rows = fitted_model(algorithm, task, classes, {"max_iter": "5"}
                                   if algorithm == "hist_gradient_boosting" else
                                   {"n_estimators": "5"})
        with pytest.raises(FailedPrecondition) as err:
            model.explain(rows)
        assert err.value.message == (
            f"explain is not available for algorithm {algorithm!r} (version 4 of 'm'); "
            "it is for xgboost, logistic_regression, ridge")

    def test_a_calibrated_version_is_failed_precondition(self) -> None:
        """CalibratedClassifierCV averages three models: no one margin to explain."""
        from sklearn.calibration import CalibratedClassifierCV

        model, rows = fitted_model("logistic_regression", Task.CLASSIFICATION, 2)
        x = model._fitted.preprocess.transform(frame()[0])
        y = model._estimator.predict(x)
        calibrated = CalibratedClassifierCV(model._estimator, method="sigmoid", cv=3).fit(x, y)
        model = LoadedModel("m", 4, model.manifest, Fitted(model._fitted.preprocess, calibrated))
        with pytest.raises(FailedPrecondition) as err:
            model.explain(rows)
        assert err.value.message == (
            "explain is not available for calibrated versions (version 4 of 'm'): its "
            "probabilities average three calibrated logistic_regression models, whose margins "
            "no single explanation adds up to")
