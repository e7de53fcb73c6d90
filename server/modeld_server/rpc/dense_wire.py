"""Predict's dense rows read from their wire bytes: the column names recognised as one
block of bytes, the doubles taken as one array.

Parsing DenseRows makes a str per column and a Python float per value, which the schema
then turns back into a tuple and a float64 array: 114 objects for one spambase row, ~30 us
of a 1-row Predict's handler (bench/README.md). But a caller sends the same columns on
every call, and every protobuf serializer writes the columns first and the values last, as
one packed field. So the daemon parses Predict with `dense` declared as bytes (the same
wire format, see struct_rows.PredictRequestWire) and reads it here: a columns block seen
before is recognised by one byte comparison (its names decoded once, by protobuf), and
the values become one float64 array (np.frombuffer, copied to native order).

Anything else (values split over several fields or not packed, unknown fields, columns
after the values) is parsed by protobuf as before (`pb.DenseRows.FromString`), and so is
everything with --no-fast-paths: tests check both give the same rows for any message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf.message import DecodeError

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import fastpaths
from modeld_server.errors import InvalidArgument
from modeld_server.rpc.struct_rows import varint

_COLUMN_TAG = 0x0A  # DenseRows.columns = 1, length-delimited
_VALUES_TAG = 0x12  # DenseRows.values = 2, packed (length-delimited)
_KEEP = 8  # column blocks remembered
_MAX_BLOCK = 1 << 16  # bytes: a block longer than this is not remembered
_MAX_LENGTH_BYTES = 5  # the longest varint protobuf takes for a length (a 32-bit size)

_blocks: tuple[tuple[bytes, tuple[str, ...]], ...] = ()
"""Column blocks seen lately and their names, the latest first; replaced whole, never
changed in place (other threads may be reading the old tuple)."""

Values = Sequence[float] | np.ndarray


def dense_rows(raw: bytes) -> tuple[Sequence[str], Values]:
    """(columns, row-major values) of a DenseRows message's bytes.

    Raises:
        InvalidArgument: bytes that are not a DenseRows message.
    """
    if fastpaths.enabled():
        found = _from_bytes(raw)
        if found is not None:
            return found
    try:
        message = pb.DenseRows.FromString(raw)
    except DecodeError:
        raise InvalidArgument("dense is not a valid DenseRows message") from None
    return tuple(message.columns), message.values


def _from_bytes(raw: bytes) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The common layout (a known or new columns block, then one packed values field), or
    None for any other."""
    for block, names in _blocks:
        if raw.startswith(block):
            values = _packed_tail(raw, len(block))
            if values is not None:
                return names, values
    at = 0
    while at < len(raw) and raw[at] == _COLUMN_TAG:
        at, size = varint(raw, at + 1)
        if size < 0 or at + size > len(raw):
            return None
        at += size
    values = _packed_tail(raw, at)
    if values is None:
        return None
    block = raw[:at]
    try:
        names = tuple(pb.DenseRows.FromString(block).columns)  # protobuf checks the UTF-8
    except DecodeError:
        return None
    if len(block) <= _MAX_BLOCK:
        _remember(block, names)
    return names, values


def _packed_tail(raw: bytes, at: int) -> np.ndarray | None:
    """The doubles of one packed values field running from `at` to the end (none if
    nothing follows), or None if something else follows."""
    if at == len(raw):
        return np.empty(0)
    if raw[at] != _VALUES_TAG:
        return None
    start, size = varint(raw, at + 1)
    # Protobuf refuses a length written in more than 5 bytes (padded with 0x80s), even if
    # its value is small: so does this read, by leaving it to protobuf.
    if size < 0 or start + size != len(raw) or size % 8 or start - at > 1 + _MAX_LENGTH_BYTES:
        return None
    return np.frombuffer(raw, dtype="<f8", count=size // 8, offset=start).astype(np.float64)


def _remember(block: bytes, names: tuple[str, ...]) -> None:
    global _blocks
    _blocks = ((block, names), *(b for b in _blocks if b[0] != block))[:_KEEP]
