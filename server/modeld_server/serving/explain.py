"""Per-row feature contributions to a model's raw margin, in the user's column names.

base + sum(contributions) = margin, row by row:

- XGBoost: the booster's own exact contributions (`pred_contribs`, TreeSHAP); the base
  is its bias term.
- logistic_regression, ridge: coefficient x standardized value; the base is the
  intercept (a numeric feature at its training mean contributes 0, a one-hot column
  its coefficient when the row has that category).

Classification explains one margin per row: the log-odds of the second class for a
binary model, the predicted class's softmax input for a multiclass one. The
transformed columns are summed back to their source column (one-hot -> categorical).
Explanations take the libraries' plain path, not Predict's fast paths (xgb_native,
FoldedLinear): they are for looking at a few rows, not for throughput.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modeld_server.errors import FailedPrecondition
from modeld_server.features import FeatureSchema

EXPLAINABLE = ("xgboost", "logistic_regression", "ridge")


@dataclass(frozen=True)
class Explanations:
    """One explanation per row: margins[i] = base[i] + contributions[i].sum()."""

    columns: tuple[str, ...]
    """The user's feature names, the column order of `contributions`."""
    class_labels: list[str]
    """The class each row's margin belongs to; empty strings for regression."""
    margins: np.ndarray
    base: np.ndarray
    contributions: np.ndarray
    """rows x len(columns)."""


def check_explainable(algorithm: str, estimator: Any, model: str, version: int) -> None:
    """Raises FailedPrecondition naming the algorithm when it has no explanations, or
    when the version is calibrated (its probabilities average three fitted copies)."""
    if algorithm not in EXPLAINABLE:
        raise FailedPrecondition(
            f"explain is not available for algorithm {algorithm!r} (version {version} of "
            f"{model!r}); it is for {', '.join(EXPLAINABLE)}"
        )
    if type(estimator).__name__ == "CalibratedClassifierCV":
        raise FailedPrecondition(
            f"explain is not available for calibrated versions (version {version} of "
            f"{model!r}): its probabilities average three calibrated {algorithm} models, "
            "whose margins no single explanation adds up to"
        )


def explain(preprocess: Any, estimator: Any, schema: FeatureSchema, classes: list[str],
            matrix: np.ndarray) -> Explanations:
    """Explains rows already in the model's column order (see FeatureSchema).

    Args:
        preprocess: the fitted preprocessor as saved (a Pipeline or ColumnTransformer).
        estimator: the fitted XGBoost or linear estimator.
        schema: the model's input schema.
        classes: class labels in the estimator's class order; empty for regression.
        matrix: the rows.
    """
    transformed = np.asarray(preprocess.transform(matrix), dtype=np.float64)
    if type(estimator).__module__.startswith("xgboost"):
        picked, base, margins, per_column = _xgboost(estimator, transformed)
    else:
        picked, base, margins, per_column = _linear(estimator, transformed)
    owner = source_columns(preprocess, schema, transformed.shape[1])
    summed = np.zeros((len(matrix), len(schema.columns)))
    np.add.at(summed.T, owner, per_column.T)  # one-hot columns onto their source column
    labels = [classes[k] for k in picked] if classes else [""] * len(matrix)
    return Explanations(schema.columns, labels, margins, base, summed)


def _rows(values: np.ndarray, picked: np.ndarray) -> np.ndarray:
    return np.asarray(values[np.arange(len(values)), picked])


def _xgboost(estimator: Any, x: np.ndarray) -> tuple[np.ndarray, ...]:
    import xgboost

    booster = estimator.get_booster()
    data = xgboost.DMatrix(x, missing=np.nan, nthread=1)
    contribs = np.asarray(booster.predict(data, pred_contribs=True, validate_features=False),
                          dtype=np.float64)
    margin = np.asarray(booster.predict(data, output_margin=True, validate_features=False),
                        dtype=np.float64)
    if contribs.ndim == 3:  # multiclass: rows x classes x (features + bias)
        picked = margin.argmax(axis=1)
        contribs = contribs[np.arange(len(x)), picked]
        margin = _rows(margin, picked)
    else:  # binary (log-odds of the second class) or regression
        picked = np.ones(len(x), dtype=np.intp)
    return picked, contribs[:, -1], margin, contribs[:, :-1]


def _linear(estimator: Any, x: np.ndarray) -> tuple[np.ndarray, ...]:
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    margins = x @ coef.T + intercept  # rows x (1 or classes)
    picked = margins.argmax(axis=1) if coef.shape[0] > 1 else np.zeros(len(x), dtype=np.intp)
    per_column = x * coef[picked]
    base = intercept[picked]
    labels = picked + 1 if coef.shape[0] == 1 else picked  # binary: the second class
    return labels, base, _rows(margins, picked), per_column


def source_columns(preprocess: Any, schema: FeatureSchema, width: int) -> np.ndarray:
    """For each transformed column, the position of its source column in schema.columns.

    The preprocessor (training/estimators.build_preprocessor) emits one column per
    numeric feature, then each categorical feature's one-hot columns, in order.
    """
    from sklearn.compose import ColumnTransformer

    owner: list[int] = []
    if not isinstance(preprocess, ColumnTransformer):
        owner = list(range(len(schema.numeric)))
    else:
        for name, transformer, positions in preprocess.transformers_:
            if name == "remainder":
                continue
            if name == "categorical":
                encoder = transformer.steps[-1][1]
                for position, categories in zip(positions, encoder.categories_, strict=True):
                    owner.extend([int(position)] * len(categories))
            else:
                owner.extend(int(p) for p in positions)
    if len(owner) != width:
        raise FailedPrecondition(
            f"cannot map this model's {width} transformed columns back to its "
            f"{len(schema.columns)} features, so it cannot explain")
    return np.asarray(owner, dtype=np.intp)
