"""Train-time checks of dataset selection and validation options (in the daemon, from the
header)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from modeld_server.errors import InvalidArgument, clip, quoted
from modeld_server.types import DatasetSpec

_OPTIONS = {"drop_duplicates": bool, "fail_on_missing_target": bool, "min_rows": int,
            "max_malformed_fraction": float}


def check_selection(dataset: DatasetSpec, columns: list[str]) -> None:
    """Every column the request names exists, and every filter is well formed.

    Raises:
        InvalidArgument: naming the field and the value.
    """
    named = [("dataset.target", dataset.target), ("dataset.eval_label", dataset.eval_label)]
    named += [("dataset.features", c) for c in dataset.features]
    named += [("dataset.drop_columns", c) for c in dataset.drop_columns]
    named += [(f"dataset.filters[{i}].column", f.get("column", ""))
              for i, f in enumerate(dataset.filters)]
    for field, column in named:
        if column and column not in columns:
            shown = ", ".join(clip(c, 40) for c in columns[:60])
            shown += " ..." if len(columns) > 60 else ""
            raise InvalidArgument(f"{field} {quoted(column)} is not a column of "
                                  f"{quoted(dataset.path)} (columns: {shown})")
    labels = {dataset.target, dataset.eval_label} - {""}
    for column in dataset.features:
        if column in labels:
            raise InvalidArgument(f"dataset.features names the label column {quoted(column)}")
    dropped = labels | set(dataset.drop_columns)
    if not dataset.features and all(column in dropped for column in columns):
        what = (f"dataset.drop_columns {quoted(list(dataset.drop_columns))} leaves"
                if dataset.drop_columns else "the label columns leave")
        raise InvalidArgument(f"{what} no feature column of {quoted(dataset.path)} to train on")
    for i, flt in enumerate(dataset.filters):
        _check_filter(i, flt)


def _check_filter(i: int, flt: dict[str, Any]) -> None:
    where = f"dataset.filters[{i}]"
    if not flt.get("column"):
        raise InvalidArgument(f"{where}.column is required")
    kinds = [k for k in ("range", "values", "dates") if k in flt]
    if len(kinds) != 1:
        raise InvalidArgument(f"{where} needs exactly one of range, values, dates")
    if "range" in flt:
        low, high = flt["range"].get("min"), flt["range"].get("max")
        for bound in (low, high):
            if bound is not None and math.isnan(bound):
                raise InvalidArgument(f"{where}.range has a NaN bound")
        if low is not None and high is not None and low > high:
            raise InvalidArgument(f"{where}.range min {low} is above max {high}")
    if "dates" in flt:
        parsed = []
        for side in ("start", "end"):
            text = flt["dates"].get(side) or ""
            if text:
                try:
                    parsed.append(datetime.fromisoformat(text))
                except ValueError:
                    raise InvalidArgument(f"{where}.dates.{side} {quoted(text)} is not an ISO-8601 "
                                          "date") from None
        if len(parsed) == 2 and parsed[0] > parsed[1]:
            raise InvalidArgument(f"{where}.dates start is after end")


def check_validation_options(options: dict[str, Any]) -> dict[str, Any]:
    """Only the set options, checked; returns them for the job spec."""
    for name in options:
        if name not in _OPTIONS:
            raise InvalidArgument(f"validation.{name} is not an option")
    if options.get("min_rows", 20) < 1:
        raise InvalidArgument(f"validation.min_rows must be >= 1, got {options['min_rows']}")
    fraction = options.get("max_malformed_fraction", 0.01)
    if not 0.0 <= fraction <= 1.0:
        raise InvalidArgument(f"validation.max_malformed_fraction must be in [0, 1], "
                              f"got {fraction}")
    return options
