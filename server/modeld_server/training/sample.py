"""What Train reads of a dataset in the daemon: a bounded prefix, never the whole file.

A dataset is untrusted input. A 1.5 MB .csv.gz can expand to 1 GiB, and a 51 KB one to a
header of 25 million fields; read whole in the daemon, either took gigabytes and minutes
of the process that serves every model. So the daemon reads at most SAMPLE_BYTES of a
file, uncompressed, for at most SAMPLE_SECONDS: the header (refused past MAX_HEADER_BYTES
or MAX_COLUMNS) and the rows that fit, to infer the task. Everything else is read by the
job's worker process, under the job's memory and time limits (worker.py, validation.py).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modeld_server.errors import InvalidArgument, ResourceExhausted, quoted
from modeld_server.training import jsonl
from modeld_server.training.datasets import CSV_READ_ERRORS, is_jsonl, is_parquet, unreadable

MAX_HEADER_BYTES = 1 << 20
"""The longest header line Train accepts."""
MAX_COLUMNS = 100_000
"""The most columns Train accepts."""
SAMPLE_BYTES = 4 << 20
"""The most (uncompressed) bytes of a CSV file the daemon reads."""
SAMPLE_SECONDS = 5.0
"""The longest the daemon spends reading them; past it, what was read is the sample."""
MAX_PARQUET_FOOTER = 8 << 20
"""The largest Parquet footer (its schema and row-group metadata) the daemon reads."""
MAX_PARQUET_SAMPLE = 64 << 20
"""The largest first row group of the target column the daemon decodes to infer the task."""
PARQUET_SAMPLE_ROWS = 65_536
_CHUNK = 256 << 10


@dataclass(frozen=True)
class Sample:
    """The start of a CSV dataset: its text cut after the last whole line, and whether that
    is the whole file."""

    text: str
    complete: bool


def read_columns(path: Path, shown: str) -> list[str]:
    """The column names of a dataset, from a bounded read of its header.

    Raises:
        InvalidArgument: the file is empty, binary, not in its format, or its header is
            longer than MAX_HEADER_BYTES or has more than MAX_COLUMNS columns.
    """
    if is_parquet(path):
        columns = list(_parquet(path, shown).schema_arrow.names)
    elif is_jsonl(path):  # the keys of the records in the sample
        columns = jsonl.columns(jsonl.parse(read_sample(path, shown).text)[0])
    else:
        columns = _header(read_sample(path, shown), shown)
    if len(columns) > MAX_COLUMNS:
        raise InvalidArgument(f"dataset.path {quoted(shown)} has {len(columns)} columns, more "
                              f"than the {MAX_COLUMNS} Train accepts")
    return columns


def read_sample(path: Path, shown: str, limit: int = SAMPLE_BYTES,
                seconds: float = SAMPLE_SECONDS) -> Sample:
    """At most `limit` uncompressed bytes from the start of a CSV file, read for at most
    `seconds`, cut after the last whole line unless that is the whole file.

    Raises:
        InvalidArgument: not a regular file, a broken gzip stream, bytes that are not
            UTF-8, or no line end in the first MAX_HEADER_BYTES.
    """
    try:
        with _open_regular(path, shown) as raw:
            stream: io.BufferedIOBase | BinaryIO = raw
            if path.name.lower().endswith(".gz"):
                stream = gzip.GzipFile(fileobj=raw)
            data, complete = _read_bounded(stream, limit, seconds)
    except CSV_READ_ERRORS as exc:
        raise unreadable(shown, "CSV", exc) from None
    line_end = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if line_end < 0 and not complete and len(data) < MAX_HEADER_BYTES:
        raise InvalidArgument(f"dataset.path {quoted(shown)}: its header line could not be "
                              f"read within {seconds:g} s")
    if line_end < 0 and (len(data) > MAX_HEADER_BYTES or not complete):
        raise InvalidArgument(f"dataset.path {quoted(shown)} has a header line longer than "
                              f"{MAX_HEADER_BYTES} bytes, the most Train reads")
    if not complete:
        data = data[: data.rindex(b"\n") + 1]
    try:
        return Sample(data.decode("utf-8"), complete)
    except UnicodeDecodeError as exc:
        raise unreadable(shown, "CSV", exc) from None


def _open_regular(path: Path, shown: str) -> BinaryIO:
    """Opens `path` for reading, refusing anything but a regular file (without blocking
    on a FIFO swapped in since it was resolved)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArgument(f"dataset.path {quoted(shown)} is not a regular file")
    return os.fdopen(fd, "rb")


def _read_bounded(stream: io.BufferedIOBase | BinaryIO, limit: int,
                  seconds: float) -> tuple[bytes, bool]:
    """(bytes read, whether the stream ended within them). GzipFile.read(n) inflates at
    most about n bytes, so a gzip bomb costs no more than `limit`."""
    chunks: list[bytes] = []
    size, deadline = 0, time.monotonic() + seconds
    while size < limit and time.monotonic() < deadline:
        chunk = stream.read(min(_CHUNK, limit - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), size == limit and not stream.read(1)


def _header(sample: Sample, shown: str) -> list[str]:
    try:
        header = next(csv.reader(io.StringIO(sample.text, newline="")), None)
    except csv.Error as exc:
        raise unreadable(shown, "CSV", exc) from None
    if not header or not any(name.strip() for name in header):
        raise InvalidArgument(f"dataset.path {quoted(shown)} is empty: it has no header row")
    if "\x00" in "".join(header):
        raise InvalidArgument(f"dataset.path {quoted(shown)} is not a text CSV file")
    return header


def _parquet(path: Path, shown: str) -> Any:
    """The ParquetFile, once its footer is known to be at most MAX_PARQUET_FOOTER bytes."""
    import pyarrow.parquet as pq

    with _open_regular(path, shown) as raw:
        size = os.fstat(raw.fileno()).st_size
        if size >= 12:
            raw.seek(size - 8)
            tail = raw.read(8)
            footer = struct.unpack("<I", tail[:4])[0]
            if tail[4:] == b"PAR1" and footer > MAX_PARQUET_FOOTER:
                raise InvalidArgument(f"dataset.path {quoted(shown)} has a Parquet footer of "
                                      f"{footer} bytes, more than the {MAX_PARQUET_FOOTER} "
                                      "Train reads")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise unreadable(shown, "Parquet", exc) from None


def infer_task(path: Path, target: str, shown: str) -> tuple[str, bool]:
    """The task the target column's values suggest (see task_of), from a bounded sample.

    Returns:
        ('classification' or 'regression', whether the sample was the whole column). When
        it was not, the worker checks the whole column agrees (prepare.py).

    Raises:
        InvalidArgument: the column cannot be read from the sample.
        ResourceExhausted: a Parquet file whose first row group of the column is over
            MAX_PARQUET_SAMPLE bytes: the task must then be given.
    """
    column, complete = _target_sample(path, target, shown)
    return task_of(column), complete


def target_labels(path: Path, target: str, shown: str) -> list[Any] | None:
    """The target column's distinct values, sorted, when the sample holds all of it;
    None otherwise (the job checks what needs them)."""
    column, complete = _target_sample(path, target, shown)
    if not complete:
        return None
    try:
        return sorted(column.dropna().unique().tolist())
    except TypeError:  # labels of mixed types: the job's own encoding decides
        return None


def _target_sample(path: Path, target: str, shown: str) -> tuple[Any, bool]:
    """The target column's values in the bounded sample, and whether that is all of them."""
    import pandas as pd

    try:
        if is_parquet(path):
            return _parquet_sample(path, target, shown)
        sample = read_sample(path, shown)
        if is_jsonl(path):
            return jsonl.frame(jsonl.parse(sample.text)[0])[target], sample.complete
        return pd.read_csv(io.StringIO(sample.text), usecols=[target])[target], sample.complete
    except (InvalidArgument, ResourceExhausted):
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for malformed files
        raise InvalidArgument(f"dataset.path {quoted(shown)}: cannot read column "
                              f"{quoted(target)}: {exc}") from None


def _parquet_sample(path: Path, target: str, shown: str) -> tuple[Any, bool]:
    parquet = _parquet(path, shown)
    meta = parquet.metadata
    if meta.num_row_groups == 0:
        return parquet.schema_arrow.empty_table()[target].to_pandas(), True
    index = parquet.schema_arrow.get_field_index(target)
    if index < 0:
        raise InvalidArgument(f"dataset.target {quoted(target)} is not a column of "
                              f"{quoted(shown)}")
    first = meta.row_group(0).column(index).total_uncompressed_size
    if first > MAX_PARQUET_SAMPLE:
        raise ResourceExhausted(
            f"dataset.path {quoted(shown)}: column {quoted(target)} holds {first} bytes in "
            f"its first row group, more than the {MAX_PARQUET_SAMPLE} Train reads to infer "
            "the task: set task in the request")
    batch = next(parquet.iter_batches(batch_size=PARQUET_SAMPLE_ROWS, columns=[target]))
    return batch.column(0).to_pandas(), batch.num_rows >= meta.num_rows


def task_of(column: Any) -> str:
    """'classification' or 'regression' from a target column's values (a pandas Series).

    Strings and bools are classes; integers with at most 20 distinct values are
    classes; any other number is a regression target.
    """
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

    column = column.dropna()
    if is_bool_dtype(column) or not (is_integer_dtype(column) or is_float_dtype(column)):
        return "classification"
    if is_float_dtype(column) and not (column == column.round()).all():
        return "regression"
    return "classification" if column.nunique() <= 20 else "regression"
