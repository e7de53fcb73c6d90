"""The algorithms modeld trains, their preprocessing, and hyperparameter checks.

Heavy libraries are imported inside functions: the daemon imports this module
to validate requests and must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modeld_server.errors import InvalidArgument, clip, quoted
from modeld_server.training.params import class_weight_by_index, parse_params
from modeld_server.types import Task

# Defaults modeld sets where the library's own default is a poor fit; a request may override.
# LogisticRegression's max_iter=100 does not converge on unscaled real data.
_DEFAULTS: dict[str, dict[str, Any]] = {"logistic_regression": {"max_iter": 2000}}


@dataclass(frozen=True)
class Algorithm:
    """One trainable algorithm: which tasks it solves and how its inputs are prepared."""

    name: str
    classes: dict[Task, str]
    """Task -> 'module:Class' of the estimator."""
    scale: bool
    """Standardise numeric features (linear models need it)."""
    native_missing: bool
    """The estimator handles NaN itself, so numeric columns are not imputed."""
    single_threaded: bool
    """It trains on one core unless its n_jobs says otherwise, and starts no OpenMP threads
    (which do not survive a fork): its folds may run side by side (parallel.fork_map)."""

    def estimator_class(self, task: Task) -> Any:
        import importlib

        module, _, cls = self.classes[task].partition(":")
        return getattr(importlib.import_module(module), cls)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "xgboost",
            {Task.CLASSIFICATION: "xgboost:XGBClassifier", Task.REGRESSION: "xgboost:XGBRegressor"},
            scale=False,
            native_missing=True,
            single_threaded=False,
        ),
        Algorithm(
            "random_forest",
            {
                Task.CLASSIFICATION: "sklearn.ensemble:RandomForestClassifier",
                Task.REGRESSION: "sklearn.ensemble:RandomForestRegressor",
            },
            scale=False,
            native_missing=False,
            single_threaded=True,
        ),
        Algorithm(
            "hist_gradient_boosting",
            {
                Task.CLASSIFICATION: "sklearn.ensemble:HistGradientBoostingClassifier",
                Task.REGRESSION: "sklearn.ensemble:HistGradientBoostingRegressor",
            },
            scale=False,
            native_missing=True,
            single_threaded=False,
        ),
        Algorithm(
            "logistic_regression",
            {Task.CLASSIFICATION: "sklearn.linear_model:LogisticRegression"},
            scale=True,
            native_missing=False,
            single_threaded=True,
        ),
        Algorithm(
            "ridge",
            {Task.REGRESSION: "sklearn.linear_model:Ridge"},
            scale=True,
            native_missing=False,
            single_threaded=True,
        ),
        Algorithm(
            "isolation_forest",
            {Task.ANOMALY_DETECTION: "sklearn.ensemble:IsolationForest"},
            scale=False,
            native_missing=False,
            single_threaded=True,
        ),
    )
}


def known_algorithm(name: str) -> Algorithm:
    """The algorithm `name`, whatever the task; Train checks it before anything that
    depends on it (the target, the task), so a typo is reported as a typo.

    Raises:
        InvalidArgument: unknown algorithm, naming the choices.
    """
    algorithm = ALGORITHMS.get(name)
    if algorithm is None:
        raise InvalidArgument(
            f"algorithm {quoted(name)} is not supported; "
            f"choose one of {', '.join(sorted(ALGORITHMS))}"
        )
    return algorithm


def get_algorithm(name: str, task: Task) -> Algorithm:
    """The algorithm `name` for `task`.

    Raises:
        InvalidArgument: unknown algorithm, or one that does not solve the task.
    """
    algorithm = known_algorithm(name)
    if task not in algorithm.classes:
        tasks = ", ".join(t.value for t in algorithm.classes)
        raise InvalidArgument(
            f"algorithm {quoted(name)} does not do {task.value} (it does {tasks})")
    return algorithm


def build_estimator(algorithm: Algorithm, task: Task, params: dict[str, str], seed: int,
                    classes: Sequence[Any] | None = None) -> Any:
    """An unfitted estimator with modeld's defaults, then the request's params, then the seed.

    Args:
        classes: the target's class labels (in the job): a class_weight object keyed by
            label is then keyed by class index, as the job's y is.

    Raises:
        InvalidArgument: an unknown parameter name or a value the estimator rejects.
    """
    cls = algorithm.estimator_class(task)
    estimator = cls()
    known = estimator.get_params(deep=False)
    values = dict(_DEFAULTS.get(algorithm.name, {}))
    values.update(parse_params(params))
    for name in values:
        if name not in known:
            raise InvalidArgument(
                f"params: {quoted(name)} is not a parameter of {cls.__name__} "
                f"(it has {', '.join(sorted(known))})"
            )
    if algorithm.name == "xgboost" and str(values.get("missing", "nan")).lower() == "nan":
        values.pop("missing", None)  # NaN: XGBoost's own default
    elif algorithm.name == "xgboost":  # the fast paths and the saved model.ubj know NaN only
        raise InvalidArgument(
            f"params: missing={clip(str(params.get('missing')))} is not supported: NaN (an "
            "empty cell; NaN or null in Predict) is the only missing value modeld trains "
            "and serves with; write that value as an empty cell instead")
    if "class_weight" in values:
        values["class_weight"] = class_weight_by_index(values["class_weight"], classes)
    if "random_state" in known and "random_state" not in params:
        values["random_state"] = seed
    try:
        estimator.set_params(**values)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"params: {exc}") from None
    return estimator


def fold_workers(algorithm: Algorithm, params: dict[str, str], cpus: int) -> int:
    """How many of a job's fits may run at once: `cpus` for a single-threaded estimator,
    1 for one that threads itself (XGBoost, HistGradientBoosting, or any n_jobs other
    than 1 in the request: the user gave its cores to the estimator)."""
    threads = parse_params(params).get("n_jobs", None)
    if not algorithm.single_threaded or threads not in (None, 1):
        return 1
    return max(1, cpus)


def check_params(algorithm: Algorithm, task: Task, params: dict[str, str], seed: int) -> None:
    """Validates names and values now, so a bad request fails at Train, not in the job.

    scikit-learn estimators declare constraints for every parameter; XGBoost
    checks its values only when it trains, so it gets a tiny fit on four rows.

    Raises:
        InvalidArgument: naming the parameter and the reason.
    """
    estimator = build_estimator(algorithm, task, params, seed)
    validate = getattr(estimator, "_validate_params", None)
    try:
        if algorithm.name == "xgboost":
            _tiny_fit(estimator, task)
        elif validate is not None:
            validate()
    except InvalidArgument:
        raise
    except Exception as exc:  # each library raises its own types for bad values
        raise InvalidArgument(f"params: {_first_line(exc)}") from None


def _tiny_fit(estimator: Any, task: Task) -> None:
    import numpy as np

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 0, 1]) if task is Task.CLASSIFICATION else np.array([0.0, 1.0, 0.5, 2.0])
    estimator.set_params(n_estimators=min(2, estimator.get_params().get("n_estimators") or 2))
    estimator.fit(x, y)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def median_or_zero(values: Any) -> float:
    """The median of a column's present values; 0.0 for a column with none.

    SimpleImputer(strategy="median") gives the same statistics but takes its median
    through numpy.ma, four times slower on spambase (26 ms against 7 ms per fit). A
    module-level function, so the fitted imputer pickles by reference.
    """
    import numpy as np

    return float(np.median(values)) if len(values) else 0.0


def build_preprocessor(
    algorithm: Algorithm, numeric: list[int], categorical: list[int]
) -> Any:
    """A ColumnTransformer over column positions: numeric first, then one-hot categoricals.

    Without categorical columns, just the numeric steps (a Pipeline over every column).

    Positions, not names, so Predict can hand it a plain NumPy array and names such
    as 'char_freq_[' (which XGBoost refuses) never reach the estimator.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    steps: list[Any] = []
    if algorithm.native_missing:
        # Only a cast to float: NaN stays for the estimator's own missing-value logic.
        steps.append(FunctionTransformer(np.asarray, kw_args={"dtype": np.float64}))
    else:
        steps.append(SimpleImputer(strategy=median_or_zero, keep_empty_features=True))
    if algorithm.scale:
        steps.append(StandardScaler())
    if numeric == list(range(len(numeric))) and not categorical:
        # All columns numeric (spambase): the same steps without the ColumnTransformer
        # around them, whose per-call overhead is most of a one-row Predict.
        return make_pipeline(*steps)
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        transformers.append(("numeric", make_pipeline(*steps), numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
        imputer = SimpleImputer(strategy="constant", fill_value="__missing__")
        transformers.append(("categorical", make_pipeline(imputer, encoder), categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
