"""Predict's two ends: rows in (dicts or a DataFrame) and predictions out, in order.

Rows go as DenseRows when every value is a number (column names once, values
row-major: smaller and faster to parse on both sides), else as RecordRows, one
``google.protobuf.Struct`` per row. pandas is never imported here: a DataFrame
is recognised by duck typing, so the client works without pandas installed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from modeld.types import Task, enum_from_pb
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["Explanation", "Predictions", "Rows", "encode_rows"]

#: What Client.predict accepts: a sequence of {column: value} or a pandas DataFrame.
Rows = Sequence[Mapping[str, Any]] | Any


def encode_rows(rows: Rows) -> pb.DenseRows | pb.RecordRows:
    """Packs rows for a PredictRequest, dense when every value is numeric.

    Args:
        rows: A sequence of mappings (column -> value), or a pandas DataFrame.

    Returns:
        DenseRows or RecordRows, rows in the order given.

    Raises:
        TypeError: A value is not a number, string, bool or missing.
    """
    if _is_dataframe(rows):
        return _encode_frame(rows)
    records = [dict(row) for row in rows]
    columns = list(records[0]) if records else []
    same_columns = all(len(r) == len(columns) and all(c in r for c in columns) for r in records)
    if records and same_columns and all(_is_number(v) for r in records for v in r.values()):
        values = [_as_float(r[c]) for r in records for c in columns]
        return pb.DenseRows(columns=columns, values=values)
    return _records(records)


def _is_dataframe(rows: Any) -> bool:
    return type(rows).__module__.startswith("pandas") and hasattr(rows, "to_dict")


def _encode_frame(frame: Any) -> pb.DenseRows | pb.RecordRows:
    columns = [str(c) for c in frame.columns]
    # numpy kinds i/u/f are numbers; bool ("b") goes as records so the model sees a bool.
    if len(frame.columns) and all(dtype.kind in "iuf" for dtype in frame.dtypes):
        values = frame.to_numpy(dtype="float64").ravel().tolist()
        return pb.DenseRows(columns=columns, values=values)
    return _records(frame.to_dict(orient="records"))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    # pandas.NA and NaT are singletons of these types; compare names to avoid importing pandas.
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    return _is_missing(value) or isinstance(value, numbers.Real)


def _as_float(value: Any) -> float:
    return math.nan if _is_missing(value) else float(value)


def _plain(column: str, value: Any) -> Any:
    """A value a Struct can hold: None, bool, float or str (numpy scalars unwrapped)."""
    if _is_missing(value):
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else number
    raise TypeError(f"column {column!r}: cannot send a {type(value).__name__} "
                    "(use a number, string, bool or None)")


def _records(rows: Sequence[Mapping[Any, Any]]) -> pb.RecordRows:
    message = pb.RecordRows()
    for row in rows:
        # rows.add() makes the Struct without importing google.protobuf (no stubs for it).
        message.rows.add().update({str(k): _plain(str(k), v) for k, v in row.items()})
    return message


@dataclasses.dataclass(frozen=True)
class Explanation:
    """One row's feature contributions: ``base_value + sum(contributions) == margin``.

    ``margin`` is the raw score explained: the log-odds of ``class_label`` (binary: the
    second class), the predicted class's softmax input (multiclass, ``class_label`` is
    the predicted class), or the predicted value (regression, ``class_label`` empty).
    ``contributions`` is keyed by the model's input columns, a categorical column's
    one-hot parts summed into one.
    """

    class_label: str
    margin: float
    base_value: float
    contributions: dict[str, float]

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` largest contributions by absolute value, largest first."""
        ranked = sorted(self.contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        return ranked[:n]

    @classmethod
    def from_pb(cls, m: pb.Explanation) -> Explanation:
        return cls(class_label=m.class_label, margin=m.margin, base_value=m.base_value,
                   contributions=dict(m.contributions))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Predictions:
    """Predictions, one per row, in the order of the rows sent; iterate or index them.

    ``predictions`` holds the labels (classification, anomaly detection) or the
    values (regression); the other fields are set according to ``task``.
    """

    model: str
    version: int
    task: Task
    labels: tuple[str, ...]
    values: tuple[float, ...]
    classes: tuple[str, ...]
    #: One tuple per row, in the order of ``classes``.
    probabilities: tuple[tuple[float, ...], ...]
    anomaly_scores: tuple[float, ...]
    raw: pb.PredictResponse = dataclasses.field(repr=False, compare=False)
    #: With ``predict(..., explain=True)``: one per row, in order; else empty.
    explanations: tuple[Explanation, ...] = ()

    @property
    def predictions(self) -> tuple[str, ...] | tuple[float, ...]:
        """The prediction of each row: a value for regression, else a label."""
        return self.values if self.task is Task.REGRESSION else self.labels

    def __len__(self) -> int:
        return len(self.predictions)

    def __iter__(self) -> Iterator[str | float]:
        return iter(self.predictions)

    def __getitem__(self, index: int) -> str | float:
        return self.predictions[index]

    def records(self) -> list[dict[str, Any]]:
        """One dict per row: prediction, plus probabilities or anomaly_score when present.

        Returns:
            Rows shaped like ``{"prediction": "1", "probabilities": {"0": 0.1, "1": 0.9}}``.
        """
        out: list[dict[str, Any]] = [{"prediction": p} for p in self.predictions]
        for row, probs in zip(out, self.probabilities, strict=False):
            row["probabilities"] = dict(zip(self.classes, probs, strict=True))
        for row, score in zip(out, self.anomaly_scores, strict=False):
            row["anomaly_score"] = score
        return out

    @classmethod
    def from_pb(cls, m: pb.PredictResponse) -> Predictions:
        width = len(m.classes)
        flat = list(m.probabilities)
        rows = len(flat) // width if width else 0
        return cls(
            model=m.model, version=m.version, task=enum_from_pb(Task, pb.Task, "TASK_", m.task),
            labels=tuple(m.labels), values=tuple(m.values), classes=tuple(m.classes),
            probabilities=tuple(tuple(flat[i * width:(i + 1) * width]) for i in range(rows)),
            anomaly_scores=tuple(m.anomaly_scores), raw=m,
            explanations=tuple(Explanation.from_pb(e) for e in m.explanations),
        )
