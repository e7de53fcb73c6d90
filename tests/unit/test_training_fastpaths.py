"""The training worker's fast paths give the library's own answers (fastpaths.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier

from modeld_server import fastpaths
from modeld_server.training.evaluate import _classes_from_proba
from modeld_server.training.prepare import sorted_codes
from modeld_server.training.validation import duplicated_rows


@pytest.fixture
def off() -> Iterator[None]:
    fastpaths.set_enabled(False)
    yield
    fastpaths.set_enabled(True)


def _fitted(classes: int, **params: str) -> tuple[XGBClassifier, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 5))
    y = (x[:, 0] * 2 + rng.standard_normal(600) > 0).astype(int) if classes == 2 else \
        np.digitize(x[:, 0] + 0.3 * rng.standard_normal(600), [-0.5, 0.5])
    return XGBClassifier(n_estimators=8, random_state=0, **params).fit(x, y), x


class TestClassesFromProba:
    @pytest.mark.parametrize("classes", [2, 3])
    def test_equal_predict_for_the_default_objectives(self, classes: int) -> None:
        """Thresholded (binary) or argmax (multiclass) probabilities are predict's classes."""
        est, x = _fitted(classes)
        got = _classes_from_proba(est, est.predict_proba(x))
        assert got is not None
        np.testing.assert_array_equal(got, np.asarray(est.predict(x)).astype(np.int64))

    def test_other_objectives_go_through_predict(self) -> None:
        est, x = _fitted(3, objective="multi:softmax")
        assert _classes_from_proba(est, est.predict_proba(x)) is None

    def test_off_it_steps_aside(self, off: None) -> None:
        est, x = _fitted(2)
        assert _classes_from_proba(est, est.predict_proba(x)) is None


def test_duplicated_rows_off_is_pandas_own(off: None) -> None:
    frame = pd.DataFrame({"a": [0.0, -0.0, np.nan, np.nan], "b": [1, 1, 2, 2]})
    assert duplicated_rows(frame).equals(frame.duplicated())
    assert duplicated_rows(frame).tolist() == [False, True, False, True]


class TestSortedCodes:
    @pytest.mark.parametrize("values", [
        np.array([3, 1, 2, 1, 3, -5]), np.array([True, False, True]),
        np.array([7, 7, 7], dtype=np.uint8), np.array([], dtype=np.int64),
        np.array([2.5, -0.0, 0.0, 1.0]), np.array(["b", "a", "b"], dtype=object)])
    def test_the_labels_and_codes_of_numpy_unique(self, values: np.ndarray) -> None:
        labels, codes = sorted_codes(values)
        want_labels, want_codes = np.unique(values, return_inverse=True)
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_array_equal(codes, want_codes)
        assert (labels.dtype, codes.dtype, codes.shape) == (
            want_labels.dtype, want_codes.dtype, want_codes.shape)
