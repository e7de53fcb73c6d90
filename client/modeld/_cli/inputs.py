"""What modelctl reads from the user: --param k=v pairs and Predict rows (CSV, JSON, stdin)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TextIO

from modeld.options import RowFilter

__all__ = ["InputError", "RowsInput", "parse_filter", "parse_params", "read_rows"]


class InputError(ValueError):
    """The user's input cannot be used; the CLI turns it into a usage error (exit 2)."""


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """Parses repeated ``--param name=value`` into a dict, values kept as strings.

    The daemon parses each value as a JSON literal when it is one, so "6" is an
    int and "gini" a string; the CLI passes them through untouched.

    Args:
        pairs: The --param values.

    Returns:
        name -> value.

    Raises:
        InputError: A pair has no "=" or an empty name, or a name repeats.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"{pair!r} is not name=value")
        if name in params:
            raise InputError(f"{name!r} is given twice")
        params[name] = value
    return params


def parse_filter(text: str) -> RowFilter:
    """Parses one --filter: ``col=LO..HI`` (numbers), ``col=A,B`` (values), ``col@START..END``.

    Args:
        text: The option's value.

    Returns:
        The row filter.

    Raises:
        InputError: The text matches none of the forms.
    """
    name, sep, rest = text.partition("=")
    dated, at, span = text.partition("@")
    if at and (not sep or len(dated) < len(name)):
        start, dots, end = span.partition("..")
        if dated and dots:
            return RowFilter.dates(dated.strip(), start.strip(), end.strip())
    elif sep and name.strip():
        low, dots, high = rest.partition("..")
        if dots:
            try:
                return RowFilter.range(name.strip(), _bound(low), _bound(high))
            except ValueError:
                pass  # not numbers: read it as a list of values
        if rest:
            return RowFilter.isin(name.strip(), [v.strip() for v in rest.split(",")])
    raise InputError(f"{text!r} is not col=LO..HI, col=A,B or col@START..END")


def _bound(text: str) -> float | None:
    return float(text) if text.strip() else None


@dataclasses.dataclass(frozen=True)
class RowsInput:
    """Rows as read: CSV cells still text (typed later, once the model's schema is known)."""

    rows: list[dict[str, Any]]
    from_csv: bool

    def typed(self, text_columns: Collection[str] = (), drop: Collection[str] = ()
              ) -> list[dict[str, Any]]:
        """The rows to send.

        Args:
            text_columns: Columns kept as text (the model's categorical features), so a
                category spelled "01" is not sent as the number 1.
            drop: Columns left out (the model's target, if the file has it).

        Returns:
            One dict per row; CSV cells as int/float when they parse, None when empty.
        """
        def cell(name: str, value: Any) -> Any:
            if not self.from_csv:
                return value
            return (value or None) if name in text_columns else _cell(value)

        return [{k: cell(k, v) for k, v in row.items() if k not in drop} for row in self.rows]


def read_rows(source: str, fmt: str, stdin: TextIO) -> RowsInput:
    """Reads rows for Predict from a file or stdin ("-").

    Args:
        source: A path, or "-" for stdin.
        fmt: "csv", "json" or "auto" (by extension; for stdin, by the first character).
        stdin: The stream to read when source is "-".

    Returns:
        The rows, to be typed with ``RowsInput.typed``.

    Raises:
        InputError: The file is missing, unreadable, empty, or not valid CSV/JSON.
    """
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    kind = fmt if fmt != "auto" else _sniff(source, text)
    rows = _json_rows(text) if kind == "json" else _csv_rows(text)
    if not rows:
        raise InputError(f"no rows in {'stdin' if source == '-' else source}")
    return RowsInput(rows, from_csv=kind != "json")


def _sniff(source: str, text: str) -> str:
    suffix = Path(source).suffix.lower() if source != "-" else ""
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    if suffix == ".csv":
        return "csv"
    return "json" if text.lstrip()[:1] in ("[", "{") else "csv"


def _json_rows(text: str) -> list[dict[str, Any]]:
    """A JSON array of objects, {"rows": [...]}, one object, or JSON Lines."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON or JSON Lines: {exc}") from exc
    if isinstance(data, dict):
        data = data["rows"] if isinstance(data.get("rows"), list) else [data]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise InputError("JSON rows must be objects: [{\"column\": value, ...}, ...]")
    return data


def _csv_rows(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return []
    rows = []
    for line, record in enumerate(reader, start=2):
        if None in record:
            raise InputError(f"CSV line {line} has more cells than the header")
        rows.append(dict(record))
    return rows


def _cell(value: str | None) -> Any:
    """A CSV cell as the number it spells, None when empty, else the string."""
    if value is None or value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
