"""XGBoost through its C API gives exactly the library's own answers, on real data."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from xgboost import XGBClassifier, XGBRegressor

from modeld_server.registry.manifest import Manifest
from modeld_server.serving import xgb_native
from modeld_server.serving.loaded import LoadedModel
from modeld_server.serving.xgb_native import NativePredictor


def native(model: Any) -> NativePredictor:
    booster = model.get_booster()
    booster.set_param({"nthread": 1})
    predictor = NativePredictor.create(booster, booster.num_features())
    assert predictor is not None
    return predictor


def proba(predictor: NativePredictor, x: np.ndarray) -> np.ndarray:
    """Probabilities as LoadedModel computes them from the booster's output, in float32.

    predict_proba answers in float32 and computes a binary model's 1 - p in float32;
    LoadedModel does it in float64, where it is exact, so it rounds to the same float32.
    """
    raw = np.asarray(predictor.predict(x), dtype=np.float64)
    both = np.column_stack((1.0 - raw, raw)) if raw.ndim == 1 else raw
    return both.astype(np.float32)


class TestEqualsTheLibrary:
    def test_binary_probabilities_equal_predict_proba(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """Every row, one at a time and all at once, NaN cells included."""
        x, y = spam
        model = XGBClassifier(n_estimators=50, n_jobs=1).fit(x, y)
        predictor = native(model)
        expected = model.predict_proba(x)
        assert np.array_equal(predictor.predict(x), expected[:, 1])  # P(class 1), as is
        assert np.array_equal(proba(predictor, x), expected)
        singles = np.vstack([proba(predictor, x[i: i + 1]) for i in range(0, len(x), 7)])
        assert np.array_equal(singles, expected[::7])

    def test_multiclass_probabilities_equal_predict_proba(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """Three classes (spam split by its capital-run length), shape (n, 3)."""
        x, y = spam
        y3 = y + (np.nan_to_num(x[:, -1]) > 300)
        model = XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y3)
        got = proba(native(model), x)
        assert got.shape == (len(x), 3)
        assert np.array_equal(got, model.predict_proba(x))

    def test_regression_values_equal_predict(self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        x, _ = spam
        target = np.nan_to_num(x[:, -1])  # capital_run_length_total from the other columns
        model = XGBRegressor(n_estimators=40, n_jobs=1).fit(x[:, :-1], target)
        got = native(model).predict(x[:, :-1])
        assert got.dtype == np.float32
        assert np.array_equal(got, model.predict(x[:, :-1]))

    def test_float32_and_rows_that_are_all_missing(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = spam
        model = XGBClassifier(n_estimators=20, n_jobs=1).fit(x, y)
        predictor, rows = native(model), x[:50].copy()
        rows[3] = np.nan
        assert np.array_equal(proba(predictor, rows.astype(np.float32)), model.predict_proba(rows))
        assert np.array_equal(proba(predictor, rows), model.predict_proba(rows))


class TestFallbacks:
    def test_inputs_it_does_not_cover_go_to_inplace_predict(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """A column slice (not C-contiguous) and integers take the library path, same answer."""
        x, y = spam
        model = XGBClassifier(n_estimators=10, n_jobs=1).fit(x, y)
        predictor = native(model)
        wide = np.hstack([x[:20], x[:20]])[:, : x.shape[1]]
        assert not wide.flags.c_contiguous
        assert np.array_equal(proba(predictor, wide), model.predict_proba(x[:20]))
        ints = np.nan_to_num(x[:20]).astype(np.int64)
        assert np.array_equal(proba(predictor, ints), model.predict_proba(ints))

    def test_a_c_side_that_disagrees_is_not_used(self, monkeypatch: pytest.MonkeyPatch,
                                                 spam: tuple[np.ndarray, np.ndarray]) -> None:
        """The probe at load catches an XGBoost whose C call answers differently."""
        x, y = spam
        booster = XGBClassifier(n_estimators=5, n_jobs=1).fit(x, y).get_booster()
        monkeypatch.setattr(xgb_native, "_CONFIG", xgb_native._CONFIG.replace(
            b'"iteration_end": 0', b'"iteration_end": 1'))
        assert NativePredictor.create(booster, booster.num_features()) is None

    def test_a_c_side_that_fails_is_not_used(self, monkeypatch: pytest.MonkeyPatch,
                                             spam: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = spam
        booster = XGBClassifier(n_estimators=5, n_jobs=1).fit(x, y).get_booster()
        monkeypatch.setattr(xgb_native, "_INTERFACE", '{"data": [%d, %d, %d, "%s"]}')
        assert NativePredictor.create(booster, booster.num_features()) is None


def test_threads_predicting_at_once_each_get_their_own_rows(
        spam: tuple[np.ndarray, np.ndarray]) -> None:
    """The output buffer is per thread: 8 threads on different rows never see another's."""
    x, y = spam
    model = XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y)
    predictor, expected = native(model), model.predict_proba(x)
    wrong: list[int] = []

    def work(offset: int) -> None:
        for i in range(offset, 800, 8):
            rows = slice(i, i + 1 + i % 3)
            if not np.array_equal(proba(predictor, x[rows]), expected[rows]):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_loaded_xgboost_model_uses_it(spam: tuple[np.ndarray, np.ndarray]) -> None:
    """LoadedModel takes the native path for XGBoost and answers as predict_proba does."""
    from modeld_server.artifacts import Fitted

    x, y = spam
    model = XGBClassifier(n_estimators=10, n_jobs=1).fit(x, y)
    names = [f"c{i}" for i in range(x.shape[1])]
    manifest = Manifest.from_json({
        "version": 1, "task": "classification", "algorithm": "xgboost", "classes": ["0", "1"],
        "schema": {"numeric": names, "categorical": [], "target": "y"}})
    loaded = LoadedModel("m", 1, manifest, Fitted(None, model))
    assert getattr(loaded._booster, "__self__", None).__class__ is NativePredictor
    result = loaded.predict(x[:200])
    assert result.probabilities is not None
    assert np.array_equal(result.probabilities.astype(np.float32), model.predict_proba(x[:200]))
