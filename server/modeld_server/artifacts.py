"""How a trained pipeline is stored in a version folder, and loaded back.

XGBoost models are saved in XGBoost's own UBJSON format (no pickle); the
scikit-learn preprocessing (and non-XGBoost estimators) go through joblib,
which unpickles: callers load only after the registry verified every
artifact's sha256 against the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_XGBOOST = "xgboost-ubj+joblib"
FORMAT_JOBLIB = "joblib"
XGB_FILE = "model.ubj"
PREPROCESS_FILE = "preprocess.joblib"
PIPELINE_FILE = "pipeline.joblib"


@dataclass(frozen=True)
class Fitted:
    """A fitted preprocessor and estimator, kept apart so Predict can call each directly."""

    preprocess: Any
    estimator: Any


def save(fitted: Fitted, folder: Path) -> str:
    """Writes the artifacts into `folder`; returns the format name for the manifest."""
    import joblib

    if type(fitted.estimator).__module__.startswith("xgboost"):
        fitted.estimator.save_model(folder / XGB_FILE)
        joblib.dump(fitted.preprocess, folder / PREPROCESS_FILE)
        return FORMAT_XGBOOST
    joblib.dump({"preprocess": fitted.preprocess, "estimator": fitted.estimator},
                folder / PIPELINE_FILE)
    return FORMAT_JOBLIB


def load(folder: Path, fmt: str, algorithm: str, task: str) -> Fitted:
    """Loads artifacts written by save(); the caller has verified their checksums.

    Raises:
        ValueError: an unknown format.
    """
    import joblib

    if fmt == FORMAT_XGBOOST:
        import xgboost

        cls = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
        estimator = cls()
        estimator.load_model(folder / XGB_FILE)
        return Fitted(joblib.load(folder / PREPROCESS_FILE), estimator)
    if fmt == FORMAT_JOBLIB:
        data = joblib.load(folder / PIPELINE_FILE)
        return Fitted(data["preprocess"], data["estimator"])
    raise ValueError(f"unknown artifact format {fmt!r} for {algorithm}")
