"""What a training run asks for: TrainSpec, with row filters and validation options.

Client.train builds a TrainSpec from its arguments; a Schedule carries one, so
a scheduled run trains exactly what an interactive one would.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from modeld.types import Task, enum_from_pb
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["RowFilter", "TrainSpec", "Validation"]

CALIBRATIONS = ("none", "sigmoid", "isotonic", "auto")


@dataclasses.dataclass(frozen=True)
class RowFilter:
    """Keeps the rows whose column matches; rows missing the column are dropped.

    Build one with ``RowFilter.range``, ``RowFilter.isin`` or ``RowFilter.dates``.
    """

    column: str
    _: dataclasses.KW_ONLY  # min and max by name: a swap would keep the wrong rows
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    kind: str = "range"

    @classmethod
    def range(cls, column: str, min: float | None = None,
              max: float | None = None) -> RowFilter:
        """Keeps rows with min <= column <= max (an unset bound is open)."""
        return cls(column, min=min, max=max, kind="range")

    @classmethod
    def isin(cls, column: str, values: Sequence[object]) -> RowFilter:
        """Keeps rows whose column is one of ``values`` (numbers as numbers, text as written)."""
        return cls(column, values=tuple(str(v) for v in values), kind="values")

    @classmethod
    def dates(cls, column: str, start: str = "", end: str = "") -> RowFilter:
        """Keeps rows whose ISO-8601 date is within [start, end] (an empty bound is open)."""
        return cls(column, start=start, end=end, kind="dates")

    def to_pb(self) -> pb.RowFilter:
        message = pb.RowFilter(column=self.column)
        if self.kind == "values":
            message.values.values.extend(self.values)
        elif self.kind == "dates":
            message.dates.start, message.dates.end = self.start, self.end
        else:
            message.range.SetInParent()  # an open range is still a range
            if self.min is not None:
                message.range.min = self.min
            if self.max is not None:
                message.range.max = self.max
        return message

    @classmethod
    def from_pb(cls, m: pb.RowFilter) -> RowFilter:
        kind = m.WhichOneof("match")
        if kind == "values":
            return cls.isin(m.column, list(m.values.values))
        if kind == "dates":
            return cls.dates(m.column, m.dates.start, m.dates.end)
        return cls.range(m.column, m.range.min if m.range.HasField("min") else None,
                         m.range.max if m.range.HasField("max") else None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Validation:
    """What data validation does about the problems it finds (daemon defaults if unset)."""

    drop_duplicates: bool = False
    fail_on_missing_target: bool = False
    min_rows: int = 0
    max_malformed_fraction: float | None = None

    def to_pb(self) -> pb.ValidationOptions:
        message = pb.ValidationOptions(drop_duplicates=self.drop_duplicates,
                                       fail_on_missing_target=self.fail_on_missing_target,
                                       min_rows=self.min_rows)
        if self.max_malformed_fraction is not None:
            message.max_malformed_fraction = self.max_malformed_fraction
        return message

    @classmethod
    def from_pb(cls, m: pb.ValidationOptions) -> Validation:
        return cls(drop_duplicates=m.drop_duplicates,
                   fail_on_missing_target=m.fail_on_missing_target, min_rows=m.min_rows,
                   max_malformed_fraction=(m.max_malformed_fraction
                                           if m.HasField("max_malformed_fraction") else None))


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """One training run: the data, the algorithm and how to evaluate and publish it.

    See ``Client.train`` for each field; ``params`` values that are not strings
    are sent as JSON literals (6 -> "6", True -> "true").
    """

    model: str
    data: str
    _: dataclasses.KW_ONLY  # the rest by name: fifteen fields in a row invite a swap
    target: str = ""
    algorithm: str = ""
    params: Mapping[str, object] = dataclasses.field(default_factory=dict)
    folds: int = 0
    seed: int | None = None
    task: Task | str | None = None
    eval_label: str = ""
    activate: bool = True
    features: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    filters: tuple[RowFilter, ...] = ()
    validation: Validation | None = None
    calibration: str = "none"
    engine: str = "local"

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}")

    def to_pb(self, request_id: str = "") -> pb.TrainRequest:
        """The TrainRequest for this spec.

        Args:
            request_id: The idempotency key to send ("" for none).

        Returns:
            The request message.
        """
        request = pb.TrainRequest(
            model=self.model, algorithm=self.algorithm, cv_folds=self.folds,
            dataset=pb.Dataset(path=self.data, target=self.target, eval_label=self.eval_label,
                               features=self.features, drop_columns=self.drop_columns,
                               filters=[f.to_pb() for f in self.filters]),
            params={k: _param_text(v) for k, v in self.params.items()},
            request_id=request_id, task=f"TASK_{Task(self.task or 'unspecified').name}",
            no_activate=not self.activate, calibration=f"CALIBRATION_{self.calibration.upper()}",
            engine="" if self.engine == "local" else self.engine)
        if self.seed is not None:
            request.seed = self.seed
        if self.validation is not None:
            request.validation.CopyFrom(self.validation.to_pb())
        return request

    @classmethod
    def from_pb(cls, m: pb.TrainRequest) -> TrainSpec:
        d = m.dataset
        return cls(
            model=m.model, data=d.path, target=d.target, algorithm=m.algorithm,
            params=dict(sorted(m.params.items())), folds=m.cv_folds,
            seed=m.seed if m.HasField("seed") else None,
            task=enum_from_pb(Task, pb.Task, "TASK_", m.task) if m.task else None,
            eval_label=d.eval_label, activate=not m.no_activate, features=tuple(d.features),
            drop_columns=tuple(d.drop_columns), filters=tuple(RowFilter.from_pb(f)
                                                              for f in d.filters),
            validation=Validation.from_pb(m.validation) if m.HasField("validation") else None,
            calibration=_calibration_name(m.calibration), engine=m.engine or "local",
        )


def _calibration_name(value: int) -> str:
    try:
        return str(pb.Calibration.Name(value)).removeprefix("CALIBRATION_").lower()
    except ValueError:  # a value from a newer daemon
        return "none"


def _param_text(value: Any) -> str:
    """The daemon parses param values as JSON literals, so non-strings go as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
