"""A model's input schema, and turning rows (records, dense arrays, DataFrames) into its matrix.

The matrix a model sees has its numeric columns first, then its categorical
columns, by position. All-numeric models get a float64 array (the fast path);
models with categorical columns get an object array. Numbers must be finite: NaN
(or null) is a missing value, infinity is refused, naming the row and column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modeld_server.errors import InvalidArgument, quoted

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FeatureSchema:
    """Feature columns in the user's spelling; the model's order is numeric then categorical."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature names in the order of the model's matrix."""
        return self.numeric + self.categorical

    def to_json(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "target": self.target}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureSchema:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]), data.get("target", ""))

    @classmethod
    def infer(cls, frame: pd.DataFrame, features: Sequence[str], target: str = "") -> FeatureSchema:
        """Numeric (and bool) columns are numeric; everything else is categorical."""
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        numeric = [c for c in features if is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c])]
        categorical = [c for c in features if c not in set(numeric)]
        return cls(tuple(numeric), tuple(categorical), target)

    # ---- building the matrix ------------------------------------------------------------

    def matrix_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's matrix from a DataFrame holding (at least) the feature columns."""
        numeric: np.ndarray = frame[list(self.numeric)].to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
        if not self.categorical:
            return numeric
        out = np.empty((len(frame), len(self.columns)), dtype=object)
        out[:, : len(self.numeric)] = numeric
        for j, name in enumerate(self.categorical, start=len(self.numeric)):
            out[:, j] = [_category(v, i, name) for i, v in enumerate(frame[name].tolist())]
        return out

    def matrix_from_records(self, rows: Sequence[Mapping[str, Any]],
                            ignore_extra: bool = False) -> np.ndarray:
        """The model's matrix from one mapping per row.

        Args:
            rows: One mapping per row, keyed by column name.
            ignore_extra: skip columns that are not features (the target always is).

        Raises:
            InvalidArgument: a row misses features (all of them named), has an unknown
                column (unless ignore_extra), a value of the wrong kind or an infinite one,
                naming the row index and the column.
        """
        if not self.categorical:
            fast = self._numeric_records(rows, ignore_extra)
            if fast is not None:
                return fast
        columns = self.columns
        n_numeric = len(self.numeric)
        dtype = np.float64 if not self.categorical else object
        out = np.empty((len(rows), len(columns)), dtype=dtype)
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                self._check_keys(i, row, ignore_extra)
            for j, name in enumerate(columns):
                try:
                    value = row[name]
                except KeyError:
                    self._check_keys(i, row, ignore_extra)
                    raise
                out[i, j] = (_number(value, i, name) if j < n_numeric
                             else _category(value, i, name))
        numbers = out if not self.categorical else out[:, :n_numeric].astype(np.float64)
        self._check_finite(numbers, "rows[{row}].{column}")
        return out

    def _numeric_records(self, rows: Sequence[Mapping[str, Any]],
                         ignore_extra: bool) -> np.ndarray | None:
        """The matrix from rows that offer `uniform_numbers()` (rpc's StructRows) when
        they hold exactly the features (and maybe the target); None sends the caller
        down the general path, which also words the errors."""
        uniform = getattr(rows, "uniform_numbers", None)
        found = uniform() if uniform is not None else None
        if found is None:
            return None
        keys, values = found
        order = _column_order(keys, self.numeric, self.target, ignore_extra)
        if order is None:
            return None
        matrix = values if order is _SAME else np.ascontiguousarray(values[:, order])
        self._check_finite(matrix, "rows[{row}].{column}")
        return matrix

    def _check_keys(self, i: int, row: Mapping[str, Any], ignore_extra: bool) -> None:
        """Raises naming every unknown column (unless ignore_extra), else every missing
        feature, at once; returns when the row's keys are fine."""
        known = set(self.columns)
        if not ignore_extra:
            unknown = sorted(str(k) for k in row if k not in known and k != self.target)
            if unknown:
                which = (f"column {quoted(unknown[0])}, which is not a feature" if len(unknown) == 1
                         else f"columns {_every(unknown)}, which are not features")
                raise InvalidArgument(
                    f"rows[{i}] has {which} of this model (set ignore_extra_columns, or "
                    "--ignore-extra-columns, to skip such columns)")
        missing = [c for c in self.columns if c not in row]
        if len(missing) == 1:
            raise InvalidArgument(f"rows[{i}] has no column {missing[0]!r}")
        if missing:
            raise InvalidArgument(
                f"rows[{i}] has no columns {_every(missing)} ({len(missing)} of the model's "
                f"{len(self.columns)} features)")

    def matrix_from_dense(self, columns: Sequence[str], values: Sequence[float] | np.ndarray,
                          ignore_extra: bool = False) -> np.ndarray:
        """The model's matrix from column names and row-major doubles.

        The target column may be among the columns, as in records: it is ignored; so are
        columns that are not features when ignore_extra.

        Raises:
            InvalidArgument: missing features (all of them named, categorical ones too),
                unknown columns (unless ignore_extra), a categorical model, bad length,
                an infinite value (naming row and column).
        """
        names = tuple(columns)
        if self.categorical:
            self._refuse_dense_for_categorical(names)
        in_order = names == self.numeric  # what clients send; no name checks then
        if not in_order:
            self._check_dense_names(names, ignore_extra)
        width = len(names)
        flat = np.asarray(values, dtype=np.float64)
        if width == 0 or flat.size % width:
            raise InvalidArgument(
                f"dense.values has {flat.size} values, not a multiple of {width} columns"
            )
        matrix = flat.reshape(-1, width)
        if not in_order:
            order = _column_order(names, self.numeric, self.target, ignore_extra)
            assert order is not None  # the names passed _check_dense_names
            matrix = matrix[:, order]
        self._check_finite(matrix, "dense row {row} column {column!r}")
        return matrix

    def _refuse_dense_for_categorical(self, names: tuple[str, ...]) -> None:
        """Dense rows hold numbers only. A client sends them when every column it has is
        numeric, so the usual cause is a missing categorical column: name the missing ones
        (a CLI user cannot choose the form; adding the column makes the client send records)."""
        missing = [c for c in self.columns if c not in set(names)]
        if missing:
            kinds = [f"{c!r} (categorical)" if c in self.categorical else repr(c)
                     for c in missing]
            raise InvalidArgument(
                f"dense.columns lacks {len(missing)} of the model's {len(self.columns)} "
                f"features: {_every(kinds, quote=False)}")
        raise InvalidArgument(
            "dense rows carry numbers only, but this model has categorical columns "
            f"({', '.join(self.categorical)}): send them as records (strings)")

    def _check_dense_names(self, names: tuple[str, ...], ignore_extra: bool) -> None:
        known = set(self.numeric)
        features = [c for c in names if c != self.target and (c in known or not ignore_extra)]
        if sorted(features) != sorted(self.numeric) or len(set(names)) != len(names):
            missing = [repr(c) for c in self.numeric if c not in set(features)]
            extra = [quoted(c) for c in sorted(set(features) - known)]
            raise InvalidArgument(
                f"dense.columns must name each of the model's {len(self.numeric)} features "
                f"once; missing {_every(missing, quote=False, brackets=True)}, "
                f"unknown {_some(extra)}"
            )

    def _check_finite(self, numbers: np.ndarray, where: str) -> None:
        """Refuses infinities in the numeric block (NaN is a missing value, and passes).

        One vectorised pass; the first offender is located only when there is one.
        """
        infinite = np.isinf(numbers)
        if not infinite.any():
            return
        row, j = (int(k) for k in np.argwhere(infinite)[0])
        place = where.format(row=row, column=self.numeric[j])
        raise InvalidArgument(f"{place} is {numbers[row, j]}: numbers must be finite "
                              "(send NaN or null for a missing value)")


_SAME = np.arange(0)  # _column_order's answer when the keys are the features, in order
_orders: dict[tuple[tuple[str, ...], tuple[str, ...], str, bool],
              tuple[np.ndarray | None]] = {}


def _column_order(keys: tuple[str, ...], features: tuple[str, ...], target: str,
                  ignore_extra: bool = False) -> np.ndarray | None:
    """Positions in `keys` of each feature, if `keys` are the features and maybe the
    target (and, with ignore_extra, any other column); None otherwise. Remembered:
    callers send the same keys again and again."""
    cache_key = (keys, features, target, ignore_extra)
    known = _orders.get(cache_key)
    if known is not None:
        return known[0]
    where = {key: i for i, key in enumerate(keys)}
    extra = set() if ignore_extra else set(keys) - set(features) - {target}
    order = (None if extra or any(f not in where for f in features)
             else _SAME if keys == features
             else np.array([where[f] for f in features], dtype=np.intp))
    if len(_orders) >= 256:  # a bound, should callers vary their columns
        _orders.clear()
    _orders[cache_key] = (order,)
    return order


def _some(names: list[str], shown: int = 10) -> str:
    """A bracketed list of the first `shown` names, with how many more there are."""
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return f"[{', '.join(names[:shown])}{more}]"


# Every missing column is named, up to this many characters: the message travels in the
# grpc-message trailer, and a client's trailers are limited (8 KiB by default).
_EVERY_BUDGET = 2000


def _every(names: list[str], *, quote: bool = True, brackets: bool = False) -> str:
    """All the names, comma-separated; past _EVERY_BUDGET characters, how many more."""
    shown: list[str] = []
    used = 0
    for name in names:
        text = quoted(name) if quote else name
        if used + len(text) > _EVERY_BUDGET and shown:
            shown.append(f"... ({len(names) - len(shown)} more)")
            break
        shown.append(text)
        used += len(text) + 2
    joined = ", ".join(shown)
    return f"[{joined}]" if brackets else joined


def _number(value: Any, row: int, column: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range: infinite to the model
            return math.inf if value > 0 else -math.inf
    raise InvalidArgument(
        f"rows[{row}].{column} must be a number or null, got {type(value).__name__} "
        f"{quoted(value)}"
    )


def _category(value: Any, row: int, column: str) -> Any:
    """Categories are strings; missing ones are NaN (what the imputer looks for)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if not isinstance(value, (str, int, float)):
        raise InvalidArgument(f"rows[{row}].{column} must be a string, number or null, "
                              f"got {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        # A CSV column read as float (it had gaps) and a JSON number name the same category.
        return str(int(value))
    return str(value)
