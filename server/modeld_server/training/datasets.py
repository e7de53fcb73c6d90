"""Finding and reading datasets under the data root.

The daemon only resolves paths and reads headers (cheap, no pandas); worker
processes read whole files.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING

from modeld_server.errors import InvalidArgument, NotFound, PermissionDenied

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def resolve_dataset(data_root: Path, relative: str) -> Path:
    """Resolves `relative` under `data_root`, refusing anything that leaves it.

    Args:
        data_root: the configured data root.
        relative: TrainRequest.dataset.path.

    Returns:
        The absolute, symlink-free path of an existing file.

    Raises:
        InvalidArgument: empty path or unsupported file type.
        PermissionDenied: absolute path, '..' or a symlink leading outside the root.
        NotFound: no such file.
    """
    if not relative:
        raise InvalidArgument("dataset.path is required")
    if "\x00" in relative:
        raise InvalidArgument("dataset.path contains a NUL character")
    if Path(relative).is_absolute():
        raise PermissionDenied(f"dataset.path {relative!r} is absolute; give a path under the data root")
    root = data_root.resolve()
    full = (root / relative).resolve()
    if not full.is_relative_to(root):
        raise PermissionDenied(f"dataset.path {relative!r} leads outside the data root")
    if not full.is_file():
        raise NotFound(f"dataset.path {relative!r} not found under the data root")
    if not full.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise InvalidArgument(
            f"dataset.path {relative!r} is not a supported file: use .csv, .csv.gz, .parquet or .pq"
        )
    return full


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def read_columns(path: Path, shown: str) -> list[str]:
    """The column names of a dataset, from its header alone.

    Raises:
        InvalidArgument: the file is empty, binary, or not in its format.
    """
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise InvalidArgument(f"dataset.path {shown!r} is not a readable Parquet file: {exc}") from None
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            header = next(csv.reader(text), None)
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise InvalidArgument(f"dataset.path {shown!r} is not a readable CSV file: {exc}") from None
    if not header or not any(name.strip() for name in header):
        raise InvalidArgument(f"dataset.path {shown!r} is empty: it has no header row")
    if "\x00" in "".join(header):
        raise InvalidArgument(f"dataset.path {shown!r} is not a text CSV file")
    return header


def load_frame(path: Path, shown: str) -> pd.DataFrame:
    """Reads a whole dataset into a DataFrame (in a worker process).

    Raises:
        InvalidArgument: the file cannot be parsed.
    """
    import pandas as pd

    try:
        if _is_parquet(path):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pandas and pyarrow raise many types for malformed files
        kind = "Parquet" if _is_parquet(path) else "CSV"
        raise InvalidArgument(f"dataset.path {shown!r} is not a readable {kind} file: {exc}") from None


def infer_task(path: Path, target: str, shown: str) -> str:
    """'classification' or 'regression' from the target column's values (reads that column only).

    Strings and bools are classes; integers with at most 20 distinct values are
    classes; any other number is a regression target.
    """
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

    try:
        if _is_parquet(path):
            column = pd.read_parquet(path, columns=[target])[target]
        else:
            column = pd.read_csv(path, usecols=[target])[target]
    except Exception as exc:  # pandas and pyarrow raise many types for malformed files
        raise InvalidArgument(f"dataset.path {shown!r}: cannot read column {target!r}: {exc}") from None
    column = column.dropna()
    if is_bool_dtype(column) or not (is_integer_dtype(column) or is_float_dtype(column)):
        return "classification"
    if is_float_dtype(column) and not (column == column.round()).all():
        return "regression"
    return "classification" if column.nunique() <= 20 else "regression"
