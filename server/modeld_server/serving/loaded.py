"""A version loaded in memory: its schema resolved once, its predict path lean."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server import artifacts
from modeld_server.errors import InvalidArgument
from modeld_server.features import FeatureSchema
from modeld_server.training.estimators import ALGORITHMS
from modeld_server.types import Task


@dataclass(frozen=True)
class Prediction:
    """What a model said about a batch of rows, in row order."""

    task: Task
    labels: list[str]
    values: np.ndarray | None = None
    classes: list[str] | None = None
    probabilities: np.ndarray | None = None
    anomaly_scores: np.ndarray | None = None


class LoadedModel:
    """One immutable version, loaded and warmed up; safe to share between threads."""

    def __init__(self, model: str, version: int, manifest: dict[str, Any],
                 fitted: artifacts.Fitted) -> None:
        self.model = model
        self.version = version
        self.manifest = manifest
        self.task = Task(manifest["task"])
        self.schema = FeatureSchema.from_json(manifest["schema"])
        self.classes = [str(c) for c in manifest.get("classes") or []]
        self._class_array = np.array(self.classes, dtype=object)
        self._estimator = fitted.estimator
        # All-numeric data for an estimator that handles NaN itself: the preprocessor is
        # only a float cast, which the input already is, so Predict skips it.
        native = ALGORITHMS[manifest["algorithm"]].native_missing
        self._preprocess = None if native and not self.schema.categorical else fitted.preprocess
        self._booster = _serving_booster(self._estimator)
        anomaly = manifest.get("anomaly") or {}
        self._threshold = float(anomaly.get("threshold", 0.0))
        self.loaded_at = time.time()
        self.load_ms = 0.0

    @classmethod
    def load(cls, model: str, version: int, folder: Path, manifest: dict[str, Any]) -> LoadedModel:
        """Loads artifacts (already verified by the caller) and runs a warm-up prediction."""
        started = time.perf_counter()
        fitted = artifacts.load(folder, manifest["format"], manifest["algorithm"], manifest["task"])
        loaded = cls(model, version, manifest, fitted)
        sample = manifest.get("sample_row")
        if sample:
            loaded.predict(loaded.schema.matrix_from_records([sample]))
        loaded.load_ms = (time.perf_counter() - started) * 1000
        return loaded

    def predict(self, matrix: np.ndarray) -> Prediction:
        """Predicts rows already in the model's column order (see FeatureSchema).

        Raises:
            InvalidArgument: finite values the model cannot take (scaled past the float
                range, or past float32 for the tree ensembles), naming the first one.
        """
        try:
            result = self._predict(matrix)
        except ValueError as exc:
            # scikit-learn's input check: "Input X contains infinity or a value too large
            # for dtype('float64')". The rows passed FeatureSchema, so the values are what
            # the model cannot take; anything else is ours, and stays INTERNAL.
            if "infinity" not in str(exc) and "too large" not in str(exc):
                raise
            raise InvalidArgument(_too_large(matrix, self.schema)) from None
        numbers = next(a for a in (result.probabilities, result.values, result.anomaly_scores,
                                   np.zeros(0)) if a is not None)
        if not np.isfinite(numbers).all():
            # Finite inputs so large that the model's arithmetic overflowed (a linear
            # model's margin at 1e300): its answer would be NaN, so it is refused.
            raise InvalidArgument(_too_large(matrix, self.schema))
        return result

    def _predict(self, matrix: np.ndarray) -> Prediction:
        x = matrix if self._preprocess is None else self._preprocess.transform(matrix)
        if self.task is Task.CLASSIFICATION:
            proba = self._predict_proba(x)
            labels = self._class_array[proba.argmax(axis=1)].tolist()
            return Prediction(self.task, labels, classes=self.classes, probabilities=proba)
        if self.task is Task.REGRESSION:
            raw = (self._booster.inplace_predict(x, validate_features=False)
                   if self._booster is not None else self._estimator.predict(x))
            values = np.asarray(raw, dtype=np.float64)
            return Prediction(self.task, [], values=values)
        scores = -np.asarray(self._estimator.score_samples(x), dtype=np.float64)
        labels = np.where(scores > self._threshold, "anomaly", "normal").tolist()
        return Prediction(self.task, labels, anomaly_scores=scores)

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self._booster is None:
            return np.asarray(self._estimator.predict_proba(x), dtype=np.float64)
        # XGBoost's own inplace predict, without the sklearn wrapper's per-call
        # config and validation: half the time for small batches.
        raw = np.asarray(self._booster.inplace_predict(x, validate_features=False),
                         dtype=np.float64)
        if raw.ndim == 1:  # binary:logistic gives P(class 1)
            return np.column_stack((1.0 - raw, raw))
        return raw


def _too_large(matrix: np.ndarray, schema: FeatureSchema) -> str:
    """Names the first value above float32's range: the ones that overflow, once scaled or
    cast by the estimator (this runs only on the error path)."""
    numbers = np.asarray(matrix[:, : len(schema.numeric)], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        huge = np.argwhere(np.abs(numbers) > np.finfo(np.float32).max)
    reason = ("values this large overflow inside this model (scaled, or cast to float32); "
              f"keep numbers within +-{np.finfo(np.float32).max:.3g}")
    if not len(huge):
        return f"the model cannot take these rows: {reason}"
    row, j = (int(k) for k in huge[0])
    return f"row {row} column {schema.numeric[j]!r} is {numbers[row, j]:g}: {reason}"


def _serving_booster(estimator: Any) -> Any:
    """The XGBoost booster to call directly, single-threaded, or None for other estimators.

    One thread per call: concurrency comes from the RPC threads, and OpenMP's
    thread start-up costs more than a small batch takes to predict.
    """
    if not type(estimator).__module__.startswith("xgboost"):
        return None
    booster = estimator.get_booster()
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective not in ("binary:logistic", "multi:softprob", "reg:squarederror"):
        return None
    booster.set_param({"nthread": 1})
    return booster
