"""Checks a dataset before it is trusted, and says what was done about each problem.

Runs in the worker. Problems that make training meaningless (too few rows, one
class, too many malformed rows) fail the job; the rest become warnings in the
report, which is stored in the version's manifest.
"""

from __future__ import annotations

import csv
import gzip
import io
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_float_dtype, is_numeric_dtype

from modeld_server import fastpaths
from modeld_server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, quoted
from modeld_server.training import label_cells
from modeld_server.training.datasets import CSV_READ_ERRORS, open_maybe_gzip, unreadable
from modeld_server.training.label_cells import Cells
from modeld_server.training.parallel import Background

_FIRST = 10  # line numbers reported per problem
_MOSTLY_NUMERIC = 0.95  # a text column this numeric is a numeric column with bad cells


@dataclass(frozen=True)
class ValidationOptions:
    drop_duplicates: bool = False
    fail_on_missing_target: bool = False
    min_rows: int = 20
    max_malformed_fraction: float = 0.01

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ValidationOptions:
        return cls(**(data or {}))


@dataclass(frozen=True)
class Selection:
    """Which rows to train on (the columns are chosen in prepare)."""

    filters: tuple[dict[str, Any], ...] = ()


@dataclass(kw_only=True)
class Report:
    rows_read: int = 0
    rows_used: int = 0
    malformed: dict[str, Any] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)
    missing_target: dict[str, Any] = field(default_factory=dict)
    filtered_out: int = 0
    missing_values: dict[str, int] = field(default_factory=dict)
    constant_columns: list[str] = field(default_factory=list)
    target: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lines: np.ndarray | None = field(default=None, repr=False)
    """The file line of each row still in the frame (not stored)."""
    label_texts: dict[Any, str] = field(default_factory=dict, repr=False)
    """The label column's values as the file writes them, by the value pandas read (not
    stored); empty when pandas read them as text already."""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("lines", "label_texts")}

    def label(self, value: Any) -> str:
        """A class label as the file writes it: 1, not the 1.0 a blank cell made of it."""
        return self.label_texts.get(value, str(value))


_FAST_SCAN_BYTES = 64 * 1024 * 1024
"""Files up to this size (uncompressed) are scanned in memory when they allow it: the scan
holds the bytes and arrays of newline and comma positions, 3-4 times the file at most."""


_STREAM_BLOCK = 8 * 1024 * 1024
"""Bytes scanned at a time in a larger file."""


def malformed_lines(path: Path) -> tuple[list[int], int]:
    """1-based line numbers of CSV records whose field count differs from the header's,
    and the number of records (blank lines are not records)."""
    bad, records, _ = scan_lines(path)
    return bad, records


Scanned = tuple[list[int], int, Cells | None]
"""malformed_lines' answer, and the label's cells when the scan could take them."""


def scan_lines(path: Path, label: str = "") -> Scanned:
    """malformed_lines, and `label`'s cells as written (label_cells.py) when it is the first
    or last column of an unquoted file whose every line has the header's field count."""
    if not path.name.lower().endswith(".gz") and path.stat().st_size > _FAST_SCAN_BYTES:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            counted = _count_streamed(mm, None, label)  # no copy of the file through read()
        return counted if counted is not None else (*_scan_records(path), None)
    with open_maybe_gzip(path) as raw:
        data = raw.read(_FAST_SCAN_BYTES + 1)
        counted = (_count_unquoted(data, label) if len(data) <= _FAST_SCAN_BYTES
                   else _count_streamed(data, raw, label))
    return counted if counted is not None else (*_scan_records(path), None)


def _count_fields_unquoted(data: bytes) -> tuple[list[int], int] | None:
    """malformed_lines for a file without quotes, counting commas per line with NumPy.

    Without a quote character a CSV record is one line and its fields are the commas
    plus one, exactly as the csv module splits it, at a fraction of the cost of making
    a string of every field (spambase: 1.5 ms against 20). None for anything else
    (quotes, NUL bytes, lone carriage returns, a blank header): the csv module decides.
    """
    counted = _count_unquoted(data, "")
    return None if counted is None else (counted[0], counted[1])


def _count_unquoted(data: bytes, label: str) -> Scanned | None:
    """_count_fields_unquoted, and the label's cells (see scan_lines)."""
    last = _label_edge(data, label)
    counted = _line_fields(data, last, header=True)
    if counted is None or not counted[1][0]:
        return None
    fields, record, keys = counted
    wrong = record[1:] & (fields[1:] != fields[0])  # line 1 is the header
    bad = (np.flatnonzero(wrong) + 2).tolist()
    cells = (label_cells.cells_of(keys[record[1:]], bool(last))
             if keys is not None and not bad else None)
    return bad, int(record[1:].sum()), cells


def _label_edge(first: bytes | mmap.mmap, label: str) -> bool | None:
    """label_cells.edge_column for the header that starts `first`, when the fast paths are
    on; None otherwise."""
    if not label or not fastpaths.enabled():
        return None
    end = first.find(b"\n", 0, _STREAM_BLOCK)
    header = bytes(first[:end if end >= 0 else min(len(first), _STREAM_BLOCK)]).rstrip(b"\r")
    return label_cells.edge_column(header, label, header.count(b",") + 1)


def _count_streamed(first: bytes | mmap.mmap, raw: IO[bytes] | gzip.GzipFile | None,
                    label: str) -> Scanned | None:
    """_count_unquoted for a file larger than _FAST_SCAN_BYTES, a block of whole lines
    at a time (`first`: the bytes read so far from `raw`, or the whole file mapped and
    `raw` None); None where that would be None, and for a
    line longer than a block or bytes that are not UTF-8 (the csv module then reports them
    as it always has). Blocks of _STREAM_BLOCK bytes keep the arrays in memory the
    allocator reuses. The csv module took 1.6 s on 500k rows x 21 columns; this 0.3 s."""
    bad: list[int] = []
    records, width, line = 0, -1, 1  # line: the file line of the block's first line
    last = _label_edge(first, label)
    keys: list[np.ndarray] | None = [] if last is not None else None
    buf, pos, eof = first, 0, raw is None
    while pos < len(buf) or not eof:
        if raw is not None and not eof and len(buf) - pos < 2 * _STREAM_BLOCK:
            more = raw.read(4 * _STREAM_BLOCK)
            buf, pos, eof = buf[pos:] + more, 0, not more
            continue
        end = min(pos + _STREAM_BLOCK, len(buf))
        cut = len(buf) if eof and end == len(buf) else buf.rfind(b"\n", pos, end) + 1
        if cut <= pos:
            return None
        data, pos = buf[pos:cut], cut
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        counted = _line_fields(data, last if keys is not None else None, header=width < 0)
        if counted is None:
            return None
        fields, record, block_keys = counted
        if width < 0:  # the first block: its first line is the header
            if not record[0]:
                return None
            width, fields, record, line = int(fields[0]), fields[1:], record[1:], 2
        bad.extend((np.flatnonzero(record & (fields != width)) + line).tolist())
        records += int(record.sum())
        line += len(fields)
        if keys is not None and (block_keys is None or bad):
            keys = None  # a cell too long, or a malformed line: pandas reads the column
        elif keys is not None and block_keys is not None:
            keys.append(block_keys[record])
    cells = (label_cells.cells_of(np.concatenate(keys), bool(last))
             if keys is not None and not bad else None)
    return bad, records, cells


def _line_fields(data: bytes, last: bool | None = None, header: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Fields per line of unquoted CSV text (commas + 1), which lines are records (not
    blank), and with `last` not None the first (False) or last (True) cell of each line
    after the `header` line as label_cells.edge_keys gives them (None when one is too
    long); None for quotes, NUL bytes or lone carriage returns.

    Raises:
        UnicodeDecodeError: bytes that are not UTF-8.
    """
    if not data.isascii():
        data.decode("utf-8")  # raises like the csv path on bytes that are not text
    if b'"' in data or b"\x00" in data:
        return None
    if b"\r" in data:
        if data.count(b"\r") != data.count(b"\r\n"):
            return None
        data = data.replace(b"\r\n", b"\n")
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    # No comma sits on a line end, so the commas before a line's start are the commas
    # before the previous line's end.
    before_end = _commas_before(raw, ends)
    fields = np.diff(before_end, prepend=0) + 1
    skip = 1 if header else 0
    keys = (None if last is None else
            label_cells.edge_keys(raw, starts[skip:], ends[skip:], last))
    return fields, ends > starts, keys


def _commas_before(raw: np.ndarray, at: np.ndarray) -> np.ndarray:
    """How many commas `raw` holds before each position of `at` (ascending, <= len(raw)).

    The commas as bits, 64 to a word, counted per word and summed: the same counts as
    searchsorted(flatnonzero(raw == ","), at) without an array of every comma's position
    (100k rows x 21 columns: 12 ms against 30).
    """
    bits = np.packbits(raw == ord(","), bitorder="little")
    words = np.zeros(len(bits) // 8 + 1, dtype="<u8")  # a spare word past the end
    words.view(np.uint8)[:len(bits)] = bits
    before = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.bitwise_count(words), out=before[1:])
    word = at >> 6
    low = words[word] & ((np.uint64(1) << (at & 63).astype(np.uint64)) - np.uint64(1))
    counts: np.ndarray = before[word] + np.bitwise_count(low)
    return counts


def _scan_records(path: Path) -> tuple[list[int], int]:
    bad: list[int] = []
    with open_maybe_gzip(path) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        width = len(next(reader, []))
        records = 0
        for record in reader:
            if not record:
                continue
            records += 1
            if len(record) != width:
                bad.append(reader.line_num)
    return bad, records


def load_checked(
    path: Path, shown: str, *, max_bytes: int = 0, label: str = ""
) -> tuple[pd.DataFrame, Report]:
    """Reads a dataset, dropping malformed records (wrong field count) and reporting them.

    Args:
        max_bytes: the most bytes the data may hold uncompressed (0: no limit).
        label: a classification target: its values as written go to report.label_texts.

    Raises:
        ResourceExhausted: the data holds more than `max_bytes` uncompressed.
    """
    report = Report()
    if max_bytes:
        check_uncompressed_size(path, shown, max_bytes)
    if path.name.lower().endswith((".parquet", ".pq")):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise unreadable(shown, "Parquet", exc) from None
        report.rows_read = len(frame)
        report.malformed = {"count": 0, "first_lines": [], "action": "none"}
        if label in frame.columns and is_float_dtype(frame[label]):
            report.label_texts = _parquet_integer_labels(path, label, frame[label])
        return frame, report
    # The scan for malformed lines, the read (without skipping any line: what the scan
    # most often finds) and the label column as text run side by side; with malformed
    # lines, the reads are done again without them. The scan takes the label's text itself
    # where it can (label_cells.py): then pandas does not read the column again.
    scan = Background(lambda: scan_lines(path, label))
    read = Background(lambda: pd.read_csv(path))
    texts = (Background(lambda: _label_column_text(path, label, []))
             if label and _may_need_label_text(path, label) and not _scan_takes_label(path, label)
             else None)
    try:
        return _checked_frame(path, shown, label, report, scan, read, texts)
    finally:
        for task in (scan, read, texts):
            if task is not None:
                task.wait()


def _checked_frame(path: Path, shown: str, label: str, report: Report,
                   scan: Background[Scanned], read: Background[pd.DataFrame],
                   texts: Background[pd.Series] | None) -> tuple[pd.DataFrame, Report]:
    try:
        bad, records, cells = scan.result()
    except CSV_READ_ERRORS as exc:  # a truncated .csv.gz ends in EOFError
        raise unreadable(shown, "CSV", exc) from None
    skip = [n - 1 for n in bad]
    try:
        frame = pd.read_csv(path, skiprows=skip) if bad else read.result()
    except Exception as exc:  # pandas raises many types for broken files
        raise unreadable(shown, "CSV", exc) from None
    report.rows_read = records
    lines = np.arange(2, records + 2 + len(bad))
    report.lines = lines[~np.isin(lines, bad)] if bad else lines
    report.malformed = {"count": len(bad), "first_lines": bad[:_FIRST], "action": "dropped",
                        "wrong_field_count": len(bad), "unparsable_numbers": 0}
    if label in frame.columns and is_numeric_dtype(frame[label]):
        # pandas made numbers (or booleans) of the labels, and floats of all of them if one
        # cell is blank: the file's own text comes from the scan, or from reading that one
        # column as text.
        found = _texts_from_scan(frame, label, cells)
        if found is None:
            column = (texts.result() if texts is not None and not bad
                      else _label_column_text(path, label, skip))
            found = _label_texts(frame[label], column)
        report.label_texts = found
    return frame, report


def _scan_takes_label(path: Path, label: str) -> bool:
    """Whether scan_lines will most likely take the label's cells (its header allows it)."""
    if not fastpaths.enabled():
        return False
    try:
        with open_maybe_gzip(path) as raw:
            header = raw.readline(_STREAM_BLOCK)
    except CSV_READ_ERRORS:  # the scan and the read say what is wrong
        return False
    return _label_edge(header, label) is not None


def _texts_from_scan(frame: pd.DataFrame, label: str,
                     cells: Cells | None) -> dict[Any, str] | None:
    """_label_texts from the scan's cells of the label, when they are one per row of
    `frame` in the column pandas read; None when there are none to use."""
    if cells is None or len(cells.codes) != len(frame):
        return None
    names = [str(c) for c in frame.columns]
    if names.index(label) != (len(names) - 1 if cells.last else 0):
        return None
    found = label_cells.label_texts(frame[label], cells)
    return found if found is not None else _label_texts(frame[label], cells.series())


def _label_column_text(path: Path, label: str, skip: list[int]) -> pd.Series:
    column: pd.Series = pd.read_csv(path, skiprows=skip, usecols=[label], dtype=str)[label]
    return column


_LABEL_PEEK_ROWS = 1000


def _may_need_label_text(path: Path, label: str) -> bool:
    """Whether pandas may read the label column as numbers, from its first rows: a column
    with text there is text throughout (so its text is never read again)."""
    try:
        head = pd.read_csv(path, usecols=[label], nrows=_LABEL_PEEK_ROWS)
    except Exception:  # not a column, or not readable: the full read says what is wrong
        return False
    return bool(is_numeric_dtype(head[label]))


def check_uncompressed_size(path: Path, shown: str, max_bytes: int) -> None:
    """Refuses a file that holds more than `max_bytes` once decompressed, before it is read
    whole: a gzipped CSV is inflated in chunks and counted (stopping at the limit); a
    Parquet file's footer says how large its row groups are uncompressed.

    Raises:
        ResourceExhausted: naming max_dataset_bytes.
    """
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise unreadable(shown, "Parquet", exc) from None
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    elif name.endswith(".gz"):
        size = 0
        try:
            with open_maybe_gzip(path) as raw:
                while size <= max_bytes and (chunk := raw.read(1 << 20)):
                    size += len(chunk)
        except CSV_READ_ERRORS as exc:
            raise unreadable(shown, "CSV", exc) from None
    else:
        size = path.stat().st_size
    if size > max_bytes:
        raise ResourceExhausted(f"dataset.path {quoted(shown)} holds more than {max_bytes} "
                                f"bytes uncompressed, over max_dataset_bytes={max_bytes}")


def _label_texts(values: pd.Series, texts: pd.Series) -> dict[Any, str]:
    """Each value's text in the file; the most common one where several spell it (1, 1.0)."""
    pairs = pd.DataFrame({"value": values.to_numpy(), "text": texts.str.strip().to_numpy()})
    found: dict[Any, str] = {}
    for (value, text), _ in pairs.dropna().value_counts().items():
        found.setdefault(value, text)
    return found


def _parquet_integer_labels(path: Path, label: str, values: pd.Series) -> dict[Any, str]:
    """An integer Parquet column with nulls reads as floats: its labels are the integers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not pa.types.is_integer(pq.read_schema(path).field(label).type):
        return {}
    return {value: str(int(value)) for value in values.dropna().unique()}


def coerce_numeric_text(frame: pd.DataFrame, report: Report, protect: set[str]) -> pd.DataFrame:
    """Columns that are numbers but for a few unparsable cells: those rows are malformed."""
    bad_rows = pd.Series(False, index=frame.index)
    for column in frame.columns:
        if column in protect or pd.api.types.is_numeric_dtype(frame[column]):
            continue
        present = frame[column].notna()
        parsed = pd.to_numeric(frame[column], errors="coerce")
        ok = parsed.notna() & present
        if present.sum() and ok.sum() / present.sum() >= _MOSTLY_NUMERIC:
            bad_rows |= present & parsed.isna()
            frame[column] = parsed
    if bad_rows.any():
        positions = np.flatnonzero(bad_rows.to_numpy())
        lines = (report.lines[positions] if report.lines is not None
                 else positions + 2).tolist()
        report.malformed["count"] = report.malformed.get("count", 0) + int(bad_rows.sum())
        report.malformed["unparsable_numbers"] = int(bad_rows.sum())
        report.malformed["first_lines"] = sorted(report.malformed.get("first_lines", [])
                                                 + lines)[:_FIRST]
        frame = frame.loc[~bad_rows].reset_index(drop=True)
    return frame


def apply_selection(frame: pd.DataFrame, selection: Selection, report: Report) -> pd.DataFrame:
    """Keeps the rows passing every filter.

    Raises:
        InvalidArgument: a filter that cannot apply to its column's type (a range on text,
            dates on numbers, a value that is not a number for a column of numbers).
    """
    keep = pd.Series(True, index=frame.index)
    for i, flt in enumerate(selection.filters):
        keep &= _filter_mask(frame, flt, f"dataset.filters[{i}]")
    report.filtered_out = int((~keep).sum())
    return frame.loc[keep].reset_index(drop=True) if report.filtered_out else frame


def _numbers(column: pd.Series) -> bool:
    return bool(is_numeric_dtype(column) and not is_bool_dtype(column))


def _filter_mask(frame: pd.DataFrame, flt: dict[str, Any], where: str) -> pd.Series:
    column = frame[flt["column"]]
    named = f"{where}: column {quoted(flt['column'])}"
    if "range" in flt:
        if not _numbers(column):
            raise InvalidArgument(f"{named} holds text, not numbers ({_example(column)}): a "
                                  "range needs a numeric column")
        mask = column.notna()
        if flt["range"].get("min") is not None:
            mask &= column >= flt["range"]["min"]
        if flt["range"].get("max") is not None:
            mask &= column <= flt["range"]["max"]
        return mask
    if "values" in flt:
        return column.notna() & _in_values(column, flt["values"], f"{where}.values")
    if _numbers(column):
        raise InvalidArgument(f"{named} holds numbers, not ISO-8601 dates "
                              f"({_example(column)})")
    # ISO8601: bare dates and timestamps mixed in one column all parse (the format guessed
    # from the first cell would turn the others into NaT, dropping their rows).
    dates = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
    mask = dates.notna()
    start, end = flt["dates"].get("start"), flt["dates"].get("end")
    if start:
        mask &= dates >= pd.Timestamp(start, tz="UTC")
    if end:
        bound = pd.Timestamp(end, tz="UTC")
        # A bare date as the end means the whole day.
        mask &= dates < bound + pd.Timedelta(days=1) if len(end) <= 10 else dates <= bound
    return mask


def _in_values(column: pd.Series, values: list[str], where: str) -> pd.Series:
    """Numbers compare as numbers: the file's "0" was read as 0.0, whose text is "0.0", so
    comparing text would never match "0". Text (and true/false) compares as written."""
    if is_bool_dtype(column):
        return column.astype(str).str.lower().isin({v.lower() for v in values})
    if not _numbers(column):
        return column.astype(str).isin(set(values))
    wanted = []
    for value in values:
        try:
            wanted.append(float(value))
        except ValueError:
            raise InvalidArgument(f"{where} {quoted(value)} is not a number, and column "
                                  f"{quoted(str(column.name))} holds numbers") from None
    return column.isin(wanted)


def _example(column: pd.Series) -> str:
    present = column.dropna()
    return f"e.g. {quoted(str(present.iloc[0]))}" if len(present) else "all missing"


def check_rows(frame: pd.DataFrame, target: str, task: str, options: ValidationOptions,
               report: Report) -> pd.DataFrame:
    """Handles missing targets and duplicates, profiles columns, and fails hopeless data."""
    malformed = report.malformed.get("count", 0)
    if report.rows_read and malformed / report.rows_read > options.max_malformed_fraction:
        raise FailedPrecondition(
            f"{malformed} of {report.rows_read} rows are malformed (first at lines "
            f"{report.malformed['first_lines']}), more than max_malformed_fraction="
            f"{options.max_malformed_fraction:g}")
    if target:
        missing = frame[target].isna()
        count = int(missing.sum())
        if count and options.fail_on_missing_target:
            raise FailedPrecondition(f"{count} rows have no target {quoted(target)}")
        report.missing_target = {"count": count, "action": "dropped" if count else "none"}
        if count:
            frame = frame.loc[~missing].reset_index(drop=True)
    duplicated = duplicated_rows(frame)
    report.duplicates = {"count": int(duplicated.sum()),
                         "action": "dropped" if options.drop_duplicates else "kept"}
    if options.drop_duplicates:
        frame = frame.loc[~duplicated].reset_index(drop=True)
    if len(frame) < options.min_rows:
        raise FailedPrecondition(f"{len(frame)} usable rows, fewer than min_rows="
                                 f"{options.min_rows}")
    _profile(frame, target, task, report)
    report.rows_used = len(frame)
    return frame


_MIX = np.uint64(0x9E3779B97F4A7C15)


def duplicated_rows(frame: pd.DataFrame) -> pd.Series:
    """frame.duplicated(), with pandas comparing only the rows that may be duplicates.

    pandas factorizes every column of every row (1.2 s on 500k rows x 21 columns). Here the
    plain number columns are hashed first, by value as pandas compares them (-0.0 as 0.0,
    every NaN as one): rows that are equal have equal hashes, so rows whose hash is unique
    are no duplicates, and pandas decides among the rest, in their order (an equal earlier
    row of any of them is among them too). The same answer, for 0.1 s. A fast path
    (fastpaths.py): off, pandas compares every row.
    """
    numbers = [j for j, dtype in enumerate(frame.dtypes)
               if isinstance(dtype, np.dtype) and dtype.kind in "fiub"]
    if not numbers or len(frame) < 2 or not fastpaths.enabled():
        return frame.duplicated()
    hashes = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in numbers:
            hashes ^= _value_bits(frame.iloc[:, j].to_numpy())
            hashes *= _MIX
            hashes ^= hashes >> np.uint64(29)
    # Rows whose hash another row shares (a hash table: a stable argsort took 3x longer).
    shared = pd.Series(hashes).duplicated(keep=False).to_numpy()
    result = np.zeros(len(frame), dtype=bool)
    candidates = np.flatnonzero(shared)
    if len(candidates):
        result[candidates] = frame.iloc[candidates].duplicated().to_numpy()
    return pd.Series(result, index=frame.index)


def _value_bits(values: np.ndarray) -> np.ndarray:
    """64 bits per value, equal for values pandas' duplicated() takes as equal."""
    if values.dtype.kind == "f":
        floats: np.ndarray = np.add(values, 0.0, dtype=np.float64)  # -0.0 + 0.0 is 0.0
        floats[np.isnan(floats)] = np.nan
        return floats.view(np.uint64)
    return values.astype(np.int64).view(np.uint64)


def _constant(column: pd.Series) -> bool:
    """Whether a column holds one value (all missing counts as one): nunique(dropna=False)
    <= 1, without the hash table for plain number columns (9 ms on spambase, now 1)."""
    values = column.to_numpy() if isinstance(column.dtype, np.dtype) else None
    if values is None or values.dtype.kind not in "fiub" or not len(values):
        return bool(column.nunique(dropna=False) <= 1)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            return bool(missing.all())
    return bool(values.min() == values.max())


def _profile(frame: pd.DataFrame, target: str, task: str, report: Report) -> None:
    counts = frame.isna().sum()
    report.missing_values = {str(c): int(n) for c, n in counts.items() if n}
    report.constant_columns = [str(c) for c in frame.columns
                               if c != target and _constant(frame[c])]
    if report.constant_columns:
        report.warnings.append(f"constant columns kept (they carry no information): "
                               f"{', '.join(report.constant_columns)}")
    if report.duplicates.get("count"):
        report.warnings.append(f"{report.duplicates['count']} exact duplicate rows "
                               f"{report.duplicates['action']}")
    if not target:
        return
    if task == "classification":
        balance = frame[target].value_counts()
        balance.index = pd.Index([report.label(v) for v in balance.index])
        report.target = {"classes": {str(k): int(v) for k, v in balance.items()}}
        if len(balance) < 2:
            raise FailedPrecondition(f"dataset.target {quoted(target)} has a single "
                                     f"class {quoted(balance.index[0])}: classification "
                                     "needs at least two")
    else:
        values = pd.to_numeric(frame[target], errors="coerce")
        report.target = {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
                         "min": float(values.min()), "max": float(values.max())}
