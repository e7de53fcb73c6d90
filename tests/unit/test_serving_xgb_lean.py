"""XGBoost through libxgboost alone gives the library's own answers, and imports nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from xgboost import XGBClassifier, XGBRegressor

from modeld_server import artifacts
from modeld_server.registry.manifest import Manifest
from modeld_server.serving import xgb_lean
from modeld_server.serving.loaded import LoadedModel
from modeld_server.serving.xgb_lean import LeanBooster


def lean(model: Any, folder: Path) -> LeanBooster:
    """The model saved as modeld saves it (save_model to model.ubj), loaded lean."""
    model.save_model(folder / artifacts.XGB_FILE)
    booster = xgb_lean.load(folder / artifacts.XGB_FILE, model.n_features_in_)
    assert booster is not None
    return booster


def proba(raw: np.ndarray) -> np.ndarray:
    """Probabilities as LoadedModel builds them (see test_serving_xgb_native)."""
    wide = np.asarray(raw, dtype=np.float64)
    both = np.column_stack((1.0 - wide, wide)) if wide.ndim == 1 else wide
    return both.astype(np.float32)


class TestEqualsTheLibrary:
    def test_binary_probabilities_equal_predict_proba(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        """All rows at once and one at a time, NaN cells included, float64 and float32."""
        x, y = spam
        model = XGBClassifier(n_estimators=50, n_jobs=1).fit(x, y)
        booster, expected = lean(model, tmp_path), model.predict_proba(x)
        assert booster.objective == "binary:logistic"
        assert np.array_equal(proba(booster.predict(x)), expected)
        assert np.array_equal(proba(booster.predict(x.astype(np.float32))),
                              model.predict_proba(x.astype(np.float32)))
        singles = np.vstack([proba(booster.predict(x[i: i + 1])) for i in range(0, len(x), 7)])
        assert np.array_equal(singles, expected[::7])

    def test_calls_either_side_of_the_gil_threshold_equal_predict_proba(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        """Small calls keep the GIL through the C call, bigger ones release it: same answers.
        A failing call raises LeanError with XGBoost's message on both paths."""
        x, y = spam
        model = XGBClassifier(n_estimators=20, n_jobs=1).fit(x, y)
        booster = lean(model, tmp_path)
        for n in (1, xgb_lean.HOLD_GIL_ROWS, xgb_lean.HOLD_GIL_ROWS + 1, 200):
            assert np.array_equal(proba(booster.predict(x[:n])), model.predict_proba(x[:n]))
        for n in (1, xgb_lean.HOLD_GIL_ROWS + 1):
            with pytest.raises(xgb_lean.LeanError, match="feature"):
                booster.predict(x[:n, :-2])

    def test_multiclass_probabilities_equal_predict_proba(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, y = spam
        y3 = y + (np.nan_to_num(x[:, -1]) > 300)
        model = XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y3)
        got = proba(lean(model, tmp_path).predict(x))
        assert got.shape == (len(x), 3)
        assert np.array_equal(got, model.predict_proba(x))

    def test_regression_values_equal_predict(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, _ = spam
        target = np.nan_to_num(x[:, -1])
        model = XGBRegressor(n_estimators=40, n_jobs=1).fit(x[:, :-1], target)
        got = lean(model, tmp_path).predict(x[:, :-1])
        assert got.dtype == np.float32
        assert np.array_equal(got, model.predict(x[:, :-1]))

    def test_rows_that_are_all_missing_and_non_contiguous_rows(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, y = spam
        model = XGBClassifier(n_estimators=20, n_jobs=1).fit(x, y)
        booster, rows = lean(model, tmp_path), x[:50].copy()
        rows[3] = np.nan
        assert np.array_equal(proba(booster.predict(rows)), model.predict_proba(rows))
        wide = np.hstack([x[:20], x[:20]])[:, : x.shape[1]]
        assert not wide.flags.c_contiguous
        assert np.array_equal(proba(booster.predict(wide)), model.predict_proba(x[:20]))

    def test_threads_predicting_at_once_each_get_their_own_rows(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        """Output buffer and proxy are per thread: 8 threads never see another's rows."""
        x, y = spam
        model = XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y)
        booster, expected = lean(model, tmp_path), model.predict_proba(x)
        wrong: list[int] = []

        def work(offset: int) -> None:
            for i in range(offset, 800, 8):
                rows = slice(i, i + 1 + i % 3)
                if not np.array_equal(proba(booster.predict(x[rows])), expected[rows]):
                    wrong.append(i)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []


class TestNotUsed:
    """Anything it is not sure of returns None, so the caller loads through xgboost."""

    def test_another_objective(self, spam: tuple[np.ndarray, np.ndarray],
                               tmp_path: Path) -> None:
        x, y = spam
        model = XGBClassifier(n_estimators=5, n_jobs=1, objective="binary:logitraw").fit(x, y)
        model.save_model(tmp_path / "model.ubj")
        assert xgb_lean.load(tmp_path / "model.ubj", x.shape[1]) is None

    def test_a_feature_count_other_than_the_schema(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, y = spam
        XGBClassifier(n_estimators=5, n_jobs=1).fit(x, y).save_model(tmp_path / "model.ubj")
        assert xgb_lean.load(tmp_path / "model.ubj", x.shape[1] - 1) is None

    def test_a_file_xgboost_cannot_read(self, tmp_path: Path) -> None:
        (tmp_path / "model.ubj").write_bytes(b"{not a model")
        assert xgb_lean.load(tmp_path / "model.ubj", 3) is None

    def test_a_c_side_that_disagrees(self, monkeypatch: pytest.MonkeyPatch,
                                     spam: tuple[np.ndarray, np.ndarray],
                                     tmp_path: Path) -> None:
        """The load-time probe: in-place prediction that differs from the DMatrix path."""
        x, y = spam
        XGBClassifier(n_estimators=5, n_jobs=1).fit(x, y).save_model(tmp_path / "model.ubj")
        monkeypatch.setattr(xgb_lean, "_CONFIG", xgb_lean._CONFIG.replace(
            b'"iteration_end": 0', b'"iteration_end": 1'))
        assert xgb_lean.load(tmp_path / "model.ubj", x.shape[1]) is None


def manifest_for(names: list[str], categorical: list[str]) -> dict[str, Any]:
    return {"version": 1, "task": "classification", "algorithm": "xgboost", "classes": ["0", "1"],
            "format": artifacts.FORMAT_XGBOOST,
            "schema": {"numeric": names, "categorical": categorical, "target": "y"}}


def test_a_loaded_numeric_xgboost_version_takes_the_lean_path(
        spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """LoadedModel.load on a saved version: LeanBooster, the library's probabilities."""
    x, y = spam
    model = XGBClassifier(n_estimators=10, n_jobs=1).fit(x, y)
    artifacts.save(artifacts.Fitted("a preprocessor it must not need", model), tmp_path)
    names = [f"c{i}" for i in range(x.shape[1])]
    loaded = LoadedModel.load("m", 1, tmp_path, Manifest.from_json(manifest_for(names, [])))
    assert isinstance(loaded._estimator, LeanBooster)
    result = loaded.predict(x[:200])
    assert result.probabilities is not None
    assert np.array_equal(result.probabilities.astype(np.float32), model.predict_proba(x[:200]))


LOAD_AND_LIST = """
import json, sys
from pathlib import Path
import numpy as np
from modeld_server.registry.manifest import Manifest
from modeld_server.serving.loaded import LoadedModel
folder = Path(sys.argv[1])
manifest = Manifest.from_json(json.loads((folder / "manifest.json").read_text()))
loaded = LoadedModel.load("m", 1, folder, manifest)
loaded.predict(np.zeros((1, len(loaded.schema.numeric))))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_loading_and_predicting_imports_no_ml_library(
        spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """In a fresh interpreter: neither xgboost nor scikit-learn, pandas, SciPy or joblib."""
    x, y = spam
    model = XGBClassifier(n_estimators=10, n_jobs=1).fit(x, y)
    artifacts.save(artifacts.Fitted(None, model), tmp_path)
    names = [f"c{i}" for i in range(x.shape[1])]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_for(names, [])))
    out = subprocess.run([sys.executable, "-c", LOAD_AND_LIST, str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout
    imported = set(json.loads(out))
    assert imported & {"xgboost", "sklearn", "pandas", "scipy", "joblib"} == set()
