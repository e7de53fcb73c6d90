"""A classification label's text as the file writes it, taken from the bytes the malformed-line
scan already holds, instead of pandas reading the whole file a second time for one column.

pandas turns a label column of 0 and 1 into numbers (floats, if one cell is blank), while a
model's classes are named as the file writes them (validation.Report.label_texts). The
plain way to learn those texts is `read_csv(usecols=[label], dtype=str)`: a second parse of
every line (50 ms of a 100k-row job's 60 ms read). When the label is the first or the last
column of an unquoted file, each line's cell is the bytes before its first comma or after
its last one, which the scan (validation._line_fields) cuts out with NumPy for a few
milliseconds. Cells longer than CELL_BYTES, a label in a middle column, quotes, or any
malformed line: None, and pandas reads the column as before.

A fast path (fastpaths.py): off, pandas reads the column as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

CELL_BYTES = 8
"""The longest cell taken from the bytes (one uint64 per line); 0/1, 1.0, True, -1 fit."""


@dataclass(frozen=True)
class Cells:
    """One column's cells, as written, of every record line in file order."""

    texts: list[str]
    """The distinct cells."""
    codes: np.ndarray
    """Per record line, the index of its cell in `texts`."""
    last: bool
    """The header's last column (else its first)."""

    def series(self) -> pd.Series:
        """The column as `read_csv(usecols=[label], dtype=str)` gives it: each cell's text,
        missing (None) where pandas reads a missing value ('', 'NA', 'nan'...)."""
        texts = np.array([None if t in STR_NA_VALUES else t for t in self.texts], dtype=object)
        return pd.Series(texts[self.codes] if len(texts) else np.array([], dtype=object))


def edge_column(header: bytes, label: str, width: int) -> bool | None:
    """Whether `label` is the header's last column (True), its first (False), or neither
    (None; also for a single column, or a header with a byte order mark before it)."""
    if not label or width < 2:
        return None
    names = header.rstrip(b"\n").decode("utf-8", errors="replace").split(",")
    if label not in names:
        return None
    at = names.index(label)
    return True if at == width - 1 else False if at == 0 else None


def edge_keys(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray,
              last: bool) -> np.ndarray | None:
    """The first (last=False) or last (last=True) cell of each line (positions into `raw`,
    a line's bytes raw[start:end] without its newline), as a uint64 of its bytes, zero-
    padded, the last cell's reversed; None when a cell is longer than CELL_BYTES."""
    if not len(starts):
        return np.zeros(0, dtype=np.uint64)
    span = CELL_BYTES + 1  # a cell and the comma that ends it
    steps = np.arange(span)
    at = (ends[:, None] - 1 - steps) if last else (starts[:, None] + steps)
    inside = (at >= starts[:, None]) & (at < ends[:, None])
    window = np.where(inside, raw[np.clip(at, 0, len(raw) - 1)], 0).astype(np.uint8)
    comma = window == ord(",")
    length = np.where(comma.any(axis=1), comma.argmax(axis=1), inside.sum(axis=1))
    if (length > CELL_BYTES).any():
        return None
    cells = np.where(steps[:CELL_BYTES] < length[:, None], window[:, :CELL_BYTES], 0)
    keys: np.ndarray = np.ascontiguousarray(cells, dtype=np.uint8).view("<u8").ravel()
    return keys


def cells_of(keys: np.ndarray, last: bool) -> Cells:
    """The Cells of edge_keys' keys (a file's lines, in order).

    Raises:
        UnicodeDecodeError: never for bytes the scan let through (UTF-8 checked there).
    """
    codes, uniques = pd.factorize(keys)
    texts = []
    for key in uniques.tolist():
        cell = int(key).to_bytes(CELL_BYTES, "little").rstrip(b"\0")
        texts.append((cell[::-1] if last else cell).decode("utf-8"))
    return Cells(texts, np.asarray(codes, dtype=np.intp), last)


def label_texts(values: pd.Series, cells: Cells) -> dict[Any, str] | None:
    """validation._label_texts(values, cells.series()) when each value is written one way
    (the most common spelling is then the only one); None when some value has several
    spellings, whose tie order pandas' value_counts decides, or a missing-value text."""
    column = values.to_numpy()
    present = ~pd.isna(column)
    value_codes, distinct = pd.factorize(column[present])
    stripped = [t.strip() for t in cells.texts]
    names = {t: i for i, t in enumerate(dict.fromkeys(stripped))}
    text_ids = np.array([names[t] for t in stripped], dtype=np.int64)[cells.codes[present]]
    used = np.flatnonzero(np.bincount(cells.codes[present], minlength=len(cells.texts)))
    if any(cells.texts[i] in STR_NA_VALUES for i in used):
        return None
    pairs = pd.unique(value_codes.astype(np.int64) * len(names) + text_ids)
    if len(pd.unique(pairs // max(len(names), 1))) != len(pairs):
        return None
    by_id = list(names)
    keys = distinct.tolist()
    return {keys[int(p) // len(names)]: by_id[int(p) % len(names)] for p in pairs}
