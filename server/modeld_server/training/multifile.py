"""Datasets beyond one CSV or Parquet file, for both engines: globs of files, JSON Lines,
and Parquet folders whose key=value subfolders become columns.

Train (in the daemon) checks the columns of every file with bounded reads: a CSV file's
header line, a Parquet file's footer (names and types), a JSON Lines file's first
records. The local engine's job reads the whole dataset here (load_checked), file after
file, each as the one-file path reads it, and names a malformed record by its file and
line ("part-2.csv:17"). engine=dask reads the same files on its workers (dask_engine.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server.errors import InvalidArgument, quoted
from modeld_server.training.datasets import (
    CSV_READ_ERRORS,
    DatasetFiles,
    is_jsonl,
    kind,
    open_maybe_gzip,
    unreadable,
)

_FIRST = 10  # malformed records named in the report, as validation.py
_MAX_HEADER = 1 << 20  # as sample.MAX_HEADER_BYTES
_INT = re.compile(r"-?\d{1,18}")
_FLOAT = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def hive_types(partitions: list[dict[str, str]]) -> dict[str, str]:
    """Each partition key's type over all its folders: 'int64' when every value is an
    integer, 'float64' when every value is a number, else 'object' (text)."""
    types: dict[str, str] = {}
    for key in partitions[0] if partitions else {}:
        values = [p[key] for p in partitions]
        if all(_INT.fullmatch(v) for v in values):
            types[key] = "int64"
        elif all(_FLOAT.fullmatch(v) for v in values):
            types[key] = "float64"
        else:
            types[key] = "object"
    return types


def hive_value(text: str, dtype: str) -> Any:
    """A partition folder's value as its column holds it."""
    return int(text) if dtype == "int64" else float(text) if dtype == "float64" else text


def columns(data: Path | DatasetFiles, shown: str) -> list[str]:
    """The dataset's columns, from bounded reads of every file (then the partition keys).

    Raises:
        InvalidArgument: files whose columns (or Parquet types) differ, or a partition
            key that is also a column of the files.
    """
    from modeld_server.training.sample import read_columns

    if isinstance(data, Path):
        return read_columns(data, shown)
    files = data.files
    first = read_columns(files[0], shown)
    if kind(files[0]) == "parquet":
        _same_parquet_schema(files, shown)
    elif kind(files[0]) == "csv":
        for path in files[1:]:
            other = _csv_header(path, shown)
            if other != first:
                raise InvalidArgument(
                    f"dataset.path {quoted(shown)}: {quoted(path.name)} has columns "
                    f"{', '.join(other)}; {quoted(files[0].name)} has {', '.join(first)}: "
                    "every file of a dataset has the same columns")
    for key in data.keys:
        if key in first:
            raise InvalidArgument(f"dataset.path {quoted(shown)}: partition folder key "
                                  f"{quoted(key)} is also a column of its files")
    return first + data.keys


def _same_parquet_schema(files: list[Path], shown: str) -> None:
    import pyarrow.parquet as pq

    from modeld_server.training.sample import read_columns

    reference = None
    for path in files:
        read_columns(path, shown)  # the footer's size is bounded before it is parsed
        schema = pq.read_schema(path)
        types = {name: str(schema.field(name).type) for name in schema.names}
        if reference is None:
            reference = (path, types)
            continue
        for name in set(types) | set(reference[1]):
            mine, theirs = types.get(name, "missing"), reference[1].get(name, "missing")
            if mine != theirs:
                raise InvalidArgument(
                    f"dataset.path {quoted(shown)}: column {quoted(name)} is {mine} in "
                    f"{quoted(path.name)} but {theirs} in {quoted(reference[0].name)}: every "
                    "file of a dataset has the same columns and types")


def _csv_header(path: Path, shown: str) -> list[str]:
    """A CSV file's header line, reading no more than that line (at most 1 MiB)."""
    try:
        with open_maybe_gzip(path) as raw:
            line = raw.readline(_MAX_HEADER + 1)
        text = line.decode("utf-8")
    except CSV_READ_ERRORS as exc:
        raise unreadable(shown, "CSV", exc) from None
    if len(line) > _MAX_HEADER:
        raise InvalidArgument(f"dataset.path {quoted(shown)}: {quoted(path.name)} has a "
                              f"header line longer than {_MAX_HEADER} bytes, the most Train "
                              "reads")
    return next(csv.reader(io.StringIO(text, newline="")), [])


def sha256(data: Path | DatasetFiles) -> str:
    """The dataset's digest: the file's, or one over every file's name and digest."""
    from modeld_server.registry.fsio import sha256_file

    if isinstance(data, Path):
        return sha256_file(data)
    return combined_sha256([(path.name, sha256_file(path)) for path in data.files])


def combined_sha256(digests: list[tuple[str, str]]) -> str:
    """A many-file dataset's digest from its files' (name, sha256), in the dataset's order
    (engine=dask hashes each file on a worker and combines them with this)."""
    digest = hashlib.sha256()
    for name, one in digests:
        digest.update(f"{name}\0{one}\n".encode())
    return digest.hexdigest()


def load_checked(data: Path | DatasetFiles, shown: str, *, max_bytes: int = 0,
                 label: str = "") -> tuple[Any, Any]:
    """validation.load_checked for any dataset: one file as before; several files (or a
    JSON Lines file) read one by one and stacked, malformed records named file:line.

    Returns:
        The frame and the validation.Report.
    """
    import pandas as pd

    from modeld_server.training import validation

    if isinstance(data, Path) and not is_jsonl(data):
        return validation.load_checked(data, shown, max_bytes=max_bytes, label=label)
    files = DatasetFiles([data]) if isinstance(data, Path) else data
    types = hive_types(files.partitions)
    frames, lines, bad, malformed = [], [], [], 0
    report = validation.Report()
    for i, path in enumerate(files.files):
        part, read, good, wrong, count = read_one(path, shown, max_bytes, label, report)
        report.rows_read += read
        malformed += count
        bad += [f"{path.name}:{n}" for n in wrong]
        lines += [f"{path.name}:{n}" for n in good]
        for key, dtype in types.items():
            part[key] = hive_value(files.partitions[i][key], dtype)
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    report.lines = np.array(lines, dtype=object)
    report.malformed = {"count": malformed, "first_lines": bad[:_FIRST], "action": "dropped",
                        "wrong_field_count": malformed, "unparsable_numbers": 0}
    return frame, report


def read_one(path: Path, shown: str, max_bytes: int = 0, label: str = "",
             report: Any = None) -> tuple[Any, int, list[int], list[int], int]:
    """One file as load_checked reads it (engine=dask's workers read a file a partition
    with it): (frame, records read, line of each row kept, first malformed lines,
    malformed count). `report`, if given, collects the label's texts."""
    from modeld_server.training import jsonl, validation

    if max_bytes:
        validation.check_uncompressed_size(path, shown, max_bytes)
    if is_jsonl(path):
        records, good, wrong = jsonl.read(path, shown)
        return jsonl.frame(records), len(good) + len(wrong), good, wrong[:_FIRST], len(wrong)
    part, one = validation.load_checked(path, shown, label=label)
    if report is not None:
        report.label_texts.update(one.label_texts)
    # validation's lines run on past the rows kept by one per malformed line (harmless
    # for one file): cut to the rows, or the next file's rows would be named lines early.
    good = (one.lines[:len(part)].tolist() if one.lines is not None else
            list(range(1, len(part) + 1)))  # Parquet: the row's number in its file
    return (part, one.rows_read, good, list(one.malformed.get("first_lines", [])),
            int(one.malformed.get("count", 0)))
