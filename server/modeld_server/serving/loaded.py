"""A version loaded in memory: its schema resolved once, its predict path lean."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from modeld_server import artifacts, fastpaths
from modeld_server.errors import InvalidArgument
from modeld_server.features import FeatureSchema
from modeld_server.registry.manifest import Manifest
from modeld_server.serving import xgb_lean, xgb_walk
from modeld_server.serving.explain import Explanations, check_explainable, explain
from modeld_server.training.estimators import ALGORITHMS
from modeld_server.types import Task

log = structlog.get_logger(__name__)

WALKER_AFTER_CALLS = 32
"""A version's tree walker (xgb_walk) is built in the background once the version has
answered this many one-row calls: versions that never serve small calls (preloaded
rollback targets, batch models) never pay its ~50-100 ms of CPU."""
_walker_builds = threading.Semaphore(1)
"""One walker compiles at a time, whatever the number of versions warming up."""


@dataclass(frozen=True)
class Prediction:
    """What a model said about a batch of rows, in row order."""

    task: Task
    labels: list[str]
    _: KW_ONLY
    values: np.ndarray | None = None
    classes: list[str] | None = None
    probabilities: np.ndarray | None = None
    anomaly_scores: np.ndarray | None = None
    explanations: Explanations | None = None


class LoadedModel:
    """One immutable version, loaded and warmed up; safe to share between threads."""

    def __init__(self, model: str, version: int, manifest: Manifest,
                 fitted: artifacts.Fitted) -> None:
        self.model = model
        self.version = version
        self.manifest = manifest
        self.task = Task(manifest.task)
        self.schema = FeatureSchema.from_json(manifest.schema or {})
        self.classes = [str(c) for c in manifest.classes]
        self._class_array = np.array(self.classes, dtype=object)
        self._estimator = fitted.estimator
        self._fitted = fitted  # the library's objects, for explain() (see _explainable)
        self._folder: Path | None = None  # set by load(): where explain() finds them
        self._explain_lock = threading.Lock()
        # All-numeric data for an estimator that handles NaN itself: the preprocessor is
        # only a float cast, which the input already is, so Predict skips it.
        native = ALGORITHMS[manifest.algorithm].native_missing
        self._preprocess = None if native and not self.schema.categorical else fitted.preprocess
        # The fast paths stand in for the library's predict (see fastpaths.py).
        fast = fastpaths.enabled()
        self._booster = _booster_predict(self._estimator) if fast else None
        self._linear = _folded_linear(self._preprocess, self._estimator) if fast else None
        # One row of a binary XGBoost classifier, the commonest Predict: answered without
        # the general path's array steps (see _one_binary).
        self._binary_booster = (self._booster is not None and self._preprocess is None
                                and self.task is Task.CLASSIFICATION and len(self.classes) == 2)
        # One row through Python made from the trees (see xgb_walk), once it is built.
        self._walker: xgb_walk.TreeWalker | None = None
        self._small_calls: int | None = \
            0 if self._booster is not None and self._preprocess is None else None
        """One-row calls answered so far; None once a build started, or never a walker."""
        self._walker_lock = threading.Lock()
        self._walker_started = self._small_calls is None
        self.walker_done = threading.Event()
        """Set when no walker build will start or run any more (built or not)."""
        if self._walker_started:
            self.walker_done.set()
        anomaly = manifest.anomaly or {}
        self._threshold = float(anomaly.get("threshold", 0.0))
        self.loaded_at = time.time()
        self.load_ms = 0.0
        self.fingerprint: tuple[object, ...] = ()
        """Its files' stamps when they were verified for this load (see ServingManager)."""

    @classmethod
    def load(cls, model: str, version: int, folder: Path, manifest: Manifest) -> LoadedModel:
        """Loads artifacts (already verified by the caller) and runs a warm-up prediction."""
        started = time.perf_counter()
        lean = _lean_xgboost(folder, manifest) if fastpaths.enabled() else None
        fitted = lean or artifacts.load(folder, manifest.format, manifest.algorithm,
                                        manifest.task)
        loaded = cls(model, version, manifest, fitted)
        loaded._folder = folder
        sample = manifest.sample_row
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
            if self._binary_booster and len(matrix) == 1:
                one = self._one_binary(matrix)
                if one is not None:
                    return one
            # Finite inputs whose arithmetic overflows inside the model (scikit-learn's
            # softmax, FoldedLinear's margins at 1e308): its answer is what it is, refused
            # below if not finite; numpy's RuntimeWarning would only be noise in the log.
            with np.errstate(all="ignore"):
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

    def _one_binary(self, matrix: np.ndarray) -> Prediction | None:
        """One row's answer from binary:logistic's P(class 1) as Python floats: the same
        numbers and label as _predict's arrays (1 - p in float64, argmax's first index on
        a tie), ~10 us less. None when the booster's output is not one P(class 1) (another
        objective: this path is then switched off) or not finite (the general path
        refuses it, naming the value)."""
        raw = self._xgboost(matrix)
        if raw.shape != (1,):
            self._binary_booster = False
            return None
        p = float(raw[0])
        if not math.isfinite(p):
            return None
        q = 1.0 - p
        return Prediction(self.task, [self.classes[1 if p > q else 0]], classes=self.classes,
                          probabilities=np.array([[q, p]]))

    def _xgboost(self, x: np.ndarray) -> np.ndarray:
        """XGBoost's prediction: one row through the walker once it is built, else the C
        call (which also serves while the walker builds, and when it cannot be)."""
        assert self._booster is not None
        if len(x) <= xgb_walk.ROWS:
            walker = self._walker
            if walker is not None:
                return walker.predict(x)
            calls = self._small_calls
            if calls is not None:
                # Not atomic across threads: a count may be lost, and the build start a
                # call or two later; _start_walker starts it once.
                self._small_calls = calls + 1
                if calls + 1 >= WALKER_AFTER_CALLS:
                    self._start_walker(background=True)
        return self._booster(x)

    def _start_walker(self, background: bool) -> bool:
        """Claims the version's one walker build; False if it was claimed before."""
        with self._walker_lock:
            if self._walker_started:
                return False
            self._walker_started = True
            self._small_calls = None
        if background:
            threading.Thread(target=self._build_walker, daemon=True,
                             name=f"walker-{self.model}-v{self.version}").start()
        return True

    def build_walker(self) -> None:
        """Builds, checks and switches to the version's tree walker now (see xgb_walk),
        unless a build has started before; normally a background thread does this once
        the version has answered WALKER_AFTER_CALLS one-row calls. Sets walker_done."""
        if self._start_walker(background=False):
            self._build_walker()

    def _build_walker(self) -> None:
        """On any failure the C call stays; either way walker_done is set."""
        started = time.perf_counter()
        assert self._booster is not None  # the C call, which the walker must equal
        try:
            with _walker_builds:
                walker = xgb_walk.build(self._model_json(), self._booster, self._probes())
            if walker is not None:
                self._walker = walker
                log.info("xgboost_walker_ready", model=self.model, version=self.version,
                         trees=len(walker.model.trees),
                         build_ms=round((time.perf_counter() - started) * 1000, 1))
        except Exception as exc:  # an optimisation: never let it hurt serving
            log.warning("xgboost_walker_failed", model=self.model, version=self.version,
                        error=f"{type(exc).__name__}: {exc}")
        finally:
            self.walker_done.set()

    def _model_json(self) -> bytes:
        estimator = self._estimator
        if isinstance(estimator, xgb_lean.LeanBooster):
            return estimator.save_json()
        return bytes(estimator.get_booster().save_raw("json"))

    def _probes(self) -> list[np.ndarray]:
        probes = xgb_lean._probes(len(self.schema.numeric))
        if self.manifest.sample_row:
            probes.append(self.schema.matrix_from_records([self.manifest.sample_row]))
        return probes

    def explain(self, matrix: np.ndarray) -> Explanations:
        """Each row's feature contributions to its raw margin (see serving/explain.py).

        Raises:
            FailedPrecondition: the algorithm has no explanations, naming it.
        """
        check_explainable(self.manifest.algorithm, self._fitted.estimator, self.model,
                          self.version)
        fitted = self._explainable()
        return explain(fitted.preprocess, fitted.estimator, self.schema, self.classes, matrix)

    def _explainable(self) -> artifacts.Fitted:
        """The version as the libraries load it: a version served through libxgboost alone
        (xgb_lean) loads the xgboost package's model on its first explain, once."""
        if not isinstance(self._fitted.estimator, xgb_lean.LeanBooster):
            return self._fitted
        with self._explain_lock:
            if isinstance(self._fitted.estimator, xgb_lean.LeanBooster):
                assert self._folder is not None, "a lean version is only made by load()"
                self._fitted = artifacts.load(self._folder, self.manifest.format,
                                              self.manifest.algorithm, self.manifest.task)
            return self._fitted

    def _predict(self, matrix: np.ndarray) -> Prediction:
        if self._linear is not None:  # does its own imputing and scaling
            x = matrix
        else:
            x = matrix if self._preprocess is None else self._preprocess.transform(matrix)
        if self.task is Task.CLASSIFICATION:
            proba = self._predict_proba(x)
            labels = self._class_array[proba.argmax(axis=1)].tolist()
            return Prediction(self.task, labels, classes=self.classes, probabilities=proba)
        if self.task is Task.REGRESSION:
            raw = self._xgboost(x) if self._booster is not None else self._estimator.predict(x)
            values = np.asarray(raw, dtype=np.float64)
            return Prediction(self.task, [], values=values)
        scores = -np.asarray(self._estimator.score_samples(x), dtype=np.float64)
        labels = np.where(scores > self._threshold, "anomaly", "normal").tolist()
        return Prediction(self.task, labels, anomaly_scores=scores)

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self._linear is not None:
            return self._linear.predict_proba(x)
        if self._booster is None:
            return np.asarray(self._estimator.predict_proba(x), dtype=np.float64)
        # XGBoost's own inplace predict, without the sklearn wrapper's per-call
        # config and validation (and, see xgb_native, without inplace_predict's).
        raw = self._booster(x)
        if raw.ndim == 1:  # binary:logistic gives P(class 1)
            proba = np.empty((len(raw), 2))
            proba[:, 1] = raw
            np.subtract(1.0, proba[:, 1], out=proba[:, 0])
            return proba
        return np.asarray(raw, dtype=np.float64)


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


def _lean_xgboost(folder: Path, manifest: Manifest) -> artifacts.Fitted | None:
    """An XGBoost version with numeric features only, loaded without the xgboost package,
    scikit-learn or pandas (see xgb_lean); None for other versions or if it cannot be."""
    schema = manifest.schema or {}
    if manifest.format != artifacts.FORMAT_XGBOOST or schema.get("categorical") \
            or "numeric" not in schema or not ALGORITHMS[manifest.algorithm].native_missing:
        return None
    booster = xgb_lean.load(folder / artifacts.XGB_FILE, len(schema["numeric"]))
    return None if booster is None else artifacts.Fitted(None, booster)


def _booster_predict(estimator: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """XGBoost's inplace predict on the booster, single-threaded, or None for other estimators.

    One thread per call: concurrency comes from the RPC threads, and OpenMP's
    thread start-up costs more than a small batch takes to predict.
    """
    if isinstance(estimator, xgb_lean.LeanBooster):  # single-threaded already
        return estimator.predict
    if not type(estimator).__module__.startswith("xgboost"):
        return None
    booster = estimator.get_booster()
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective not in ("binary:logistic", "multi:softprob", "reg:squarederror"):
        return None
    booster.set_param({"nthread": 1})
    from modeld_server.serving.xgb_native import NativePredictor

    native = NativePredictor.create(booster, booster.num_features())
    if native is not None:
        return native.predict
    return functools.partial(booster.inplace_predict, validate_features=False)


@dataclass(frozen=True)
class FoldedLinear:
    """Median imputing, standard scaling and logistic regression as three NumPy steps.

    The same arithmetic as the fitted scikit-learn objects (probabilities equal to
    within 1e-15), without their per-call input checks: 12 us against 0.9 ms per row.
    """

    fill: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isnan(x), self.fill, x)
        scaled = (x - self.mean) / self.scale
        if not np.isfinite(scaled).all():
            # scikit-learn's own check, so the caller hears the same as from the pipeline.
            raise ValueError("Input X contains infinity or a value too large for float64")
        # A finite row can still overflow here (1e300 times a coefficient): the answer is
        # then NaN, as scikit-learn's would be, and LoadedModel.predict (which runs this
        # with numpy's warnings off) refuses it as INVALID_ARGUMENT.
        z = scaled @ self.coef.T + self.intercept
        if z.shape[1] == 1:  # binary: P(class 1) = expit(z)
            p1 = _expit(z[:, 0])
            return np.column_stack((1.0 - p1, p1))
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return np.asarray(z, dtype=np.float64)


def _expit(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return np.asarray(expit(z), dtype=np.float64)


def _folded_linear(preprocess: Any, estimator: Any) -> FoldedLinear | None:
    """A FoldedLinear for [ColumnTransformer over all columns of] a numeric Pipeline of
    SimpleImputer + StandardScaler before a LogisticRegression; None for anything else."""
    if preprocess is None or not type(estimator).__module__.startswith("sklearn"):
        return None  # without importing scikit-learn, which an XGBoost version may not need
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if type(estimator) is not LogisticRegression or preprocess is None:
        return None
    if isinstance(preprocess, ColumnTransformer):
        parts = [t for t in preprocess.transformers_ if t[0] != "remainder" or len(t[2])]
        if len(parts) != 1 or list(parts[0][2]) != list(range(preprocess.n_features_in_)):
            return None
        preprocess = parts[0][1]
    if not isinstance(preprocess, Pipeline) or len(preprocess.steps) != 2:
        return None
    (_, imputer), (_, scaler) = preprocess.steps
    if type(imputer) is not SimpleImputer or type(scaler) is not StandardScaler \
            or imputer.add_indicator or not (scaler.with_mean and scaler.with_std) \
            or len(imputer.statistics_) != len(scaler.mean_):
        return None
    return FoldedLinear(np.asarray(imputer.statistics_, dtype=np.float64),
                        np.asarray(scaler.mean_, dtype=np.float64),
                        np.asarray(scaler.scale_, dtype=np.float64),
                        np.asarray(estimator.coef_, dtype=np.float64),
                        np.asarray(estimator.intercept_, dtype=np.float64))
