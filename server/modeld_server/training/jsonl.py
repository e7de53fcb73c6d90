"""JSON Lines datasets (.jsonl, .jsonl.gz): one JSON object a line, the export format of
many systems.

Validated like CSV: a record that is not a JSON object (broken JSON, an array, a bare
value) is malformed, named by its file and line number; blank lines are no records. The
columns are the keys, in the order they first appear; a key a record lacks is a missing
value. Nested objects and arrays are kept as their JSON text (a categorical value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modeld_server.errors import InvalidArgument, quoted
from modeld_server.training.datasets import CSV_READ_ERRORS, open_maybe_gzip, unreadable


def parse(text: str) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """The records of JSON Lines text, the line number of each, and the line numbers of
    the malformed ones."""
    records: list[dict[str, Any]] = []
    good: list[int] = []
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if not isinstance(value, dict):
            bad.append(number)
            continue
        records.append({k: _flat(v) for k, v in value.items()})
        good.append(number)
    return records, good, bad


def _flat(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def columns(records: list[dict[str, Any]]) -> list[str]:
    """Every key, in the order it first appears."""
    return list(dict.fromkeys(k for r in records for k in r))


def frame(records: list[dict[str, Any]], names: list[str] | None = None) -> Any:
    """A pandas DataFrame of the records (columns `names`, or every key)."""
    import pandas as pd

    names = names if names is not None else columns(records)
    return pd.DataFrame.from_records(records, columns=names)


def read(path: Path, shown: str) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """A whole JSON Lines file: its records, their line numbers, malformed line numbers.

    Raises:
        InvalidArgument: bytes that are not UTF-8 text, or a broken gzip stream.
    """
    try:
        with open_maybe_gzip(path) as raw:
            text = raw.read().decode("utf-8")
    except CSV_READ_ERRORS as exc:
        raise unreadable(shown, "JSON Lines", exc) from None
    return parse(text)


def strict(path: Path, shown: str, names: list[str] | None = None) -> Any:
    """A whole file as a DataFrame, failing on its first malformed record (engine dask,
    which reads each file on a worker and cannot drop rows it did not count).

    Raises:
        InvalidArgument: naming the file and the line.
    """
    records, _, bad = read(path, shown)
    if bad:
        raise InvalidArgument(f"dataset.path {quoted(shown)}: {path.name} line {bad[0]} is "
                              f"not a JSON object ({len(bad)} such lines in the file)")
    return frame(records, names)
