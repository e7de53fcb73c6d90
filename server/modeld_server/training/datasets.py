"""Finding and reading datasets under the data root.

The daemon only resolves paths and reads headers (cheap, no pandas); worker
processes read whole files.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

from modeld_server.errors import InvalidArgument, NotFound, PermissionDenied, quoted

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_READ_ERRORS = (UnicodeDecodeError, EOFError, OSError, csv.Error, zlib.error)
"""What reading a (gzipped) CSV file raises for a bad file: binary bytes, a truncated or
corrupt gzip stream (EOFError, BadGzipFile, zlib.error), a broken quote."""


def unreadable(shown: str, kind: str, exc: BaseException) -> InvalidArgument:
    """The error for a dataset file the library could not parse, with its own reason.

    Args:
        shown: dataset.path as the request spelled it.
        kind: "CSV" or "Parquet".
        exc: what the reader raised.
    """
    return InvalidArgument(f"dataset.path {quoted(shown)} is not a readable {kind} file: {exc}")


def resolve_dataset(data_root: Path, relative: str) -> Path:
    """Resolves `relative` under `data_root`, refusing anything that leaves it.

    Args:
        data_root: the configured data root.
        relative: TrainRequest.dataset.path.

    Returns:
        The absolute, symlink-free path of an existing file.

    Raises:
        InvalidArgument: empty path, unsupported file type, or a path the OS cannot look
            up (a name too long, a symlink loop).
        PermissionDenied: absolute path, '..' or a symlink leading outside the root, or a
            file the daemon may not read.
        NotFound: no such file.
    """
    if not relative:
        raise InvalidArgument("dataset.path is required")
    if "\x00" in relative:
        raise InvalidArgument("dataset.path contains a NUL character")
    shown = quoted(relative)
    if Path(relative).is_absolute():
        raise PermissionDenied(f"dataset.path {shown} is absolute; give a path under the data root")
    root = data_root.resolve()
    try:
        full = (root / relative).resolve()
        if not full.is_relative_to(root):
            raise PermissionDenied(f"dataset.path {shown} leads outside the data root")
        found = full.is_file()
    except RuntimeError:  # Python 3.11's Path.resolve() on ELOOP
        raise InvalidArgument(f"dataset.path {shown} is a symlink loop") from None
    except PermissionError:
        raise PermissionDenied(f"dataset.path {shown} is not readable by the daemon") from None
    except OSError as exc:  # ENAMETOOLONG and kin: the OS cannot even look it up
        raise InvalidArgument(f"dataset.path {shown} cannot be looked up: "
                              f"{exc.strerror or exc}") from None
    if not found:
        # The root is no secret (GetStatus shows it) and says where to put the file.
        raise NotFound(f"dataset.path {shown} not found under the data root {root}")
    if not full.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise InvalidArgument(
            f"dataset.path {shown} is not a supported file: use .csv, .csv.gz, .parquet or .pq"
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
            raise unreadable(shown, "Parquet", exc) from None
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            header = next(csv.reader(text), None)
    except CSV_READ_ERRORS as exc:
        raise unreadable(shown, "CSV", exc) from None
    if not header or not any(name.strip() for name in header):
        raise InvalidArgument(f"dataset.path {quoted(shown)} is empty: it has no header row")
    if "\x00" in "".join(header):
        raise InvalidArgument(f"dataset.path {quoted(shown)} is not a text CSV file")
    return header


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
        raise InvalidArgument(f"dataset.path {quoted(shown)}: cannot read column "
                              f"{quoted(target)}: {exc}") from None
    column = column.dropna()
    if is_bool_dtype(column) or not (is_integer_dtype(column) or is_float_dtype(column)):
        return "classification"
    if is_float_dtype(column) and not (column == column.round()).all():
        return "regression"
    return "classification" if column.nunique() <= 20 else "regression"
