"""Fixtures shared by the unit tests of the XGBoost serving paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SPAMBASE = Path(__file__).resolve().parents[2] / "data" / "spambase.csv"


@pytest.fixture(scope="module")
def spam() -> tuple[np.ndarray, np.ndarray]:
    """spambase's 4601 rows with about 5% of the cells missing (NaN), and the labels; a
    module that needs another `spam` defines its own."""
    frame = pd.read_csv(SPAMBASE)
    y = frame.pop("is_spam").to_numpy()
    x = frame.to_numpy(dtype=np.float64)
    x[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan
    return x, y
