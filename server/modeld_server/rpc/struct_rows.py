"""Predict's records, read straight from their wire bytes when they are uniform numbers.

Turning `google.protobuf.Struct` rows into Python dicts costs about 1.2 us a cell (a
Value message, a WhichOneof, a float per cell), and parsing them into Structs at all
about 0.2 us: 7 ms and 1 ms for 100 spambase rows. But callers almost always send rows
of the same numeric columns, and then every row is the same bytes except for the 8-byte
doubles. So the daemon parses Predict as PredictRequestWire (records declared as bytes,
the same wire format) and keeps the records' bytes; the first row is parsed in Python to
find each double's offset, every row is checked in one vectorised comparison to equal
that template outside the doubles, and the doubles are taken as one float64 matrix:
about 0.15 ms for 100 rows, 20 us for one. Templates are remembered, so a known shape
costs no parsing. (Given a RecordRows message instead, StructRows serialises it first:
0.5 ms more for 100 rows.)

Anything else (a null, a bool, a string, a nested value, a Value with no kind set, rows
with other keys or keys in another order) makes `uniform_numbers()` answer None, and the
caller reads the rows as dicts, the general path, which also words every error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import fastpaths
from modeld_server.errors import InvalidArgument, clip

_ROW_TAG = 0x0A  # RecordRows.rows = 1, length-delimited
_ENTRY_TAG = 0x0A  # Struct.fields = 1: a map entry, length-delimited
_KEY_TAG = 0x0A  # entry key = 1, string
_VALUE_TAG = 0x12  # entry value = 2, a Value message
_NUMBER_TAG = 0x11  # Value.number_value = 2, a fixed64 double
_NUMBER_VALUE = bytes([_VALUE_TAG, 9, _NUMBER_TAG])  # a Value that is just a double
_KEEP = 8  # templates remembered per row size


@dataclass(frozen=True)
class _Template:
    """One row's bytes (with its framing), which bytes must match, where the doubles are."""

    keys: tuple[str, ...]
    mask: np.ndarray  # uint8, 0xFF where every row must equal `fixed`, 0 on the doubles
    fixed: np.ndarray  # uint8, the row's bytes with the doubles zeroed
    doubles: np.ndarray  # indices of the doubles' bytes, 8 per column, in key order


def _wire_request() -> Any:
    """PredictRequest with `records` and `dense` declared as bytes: the same wire format
    (length-delimited fields 3 and 4), so gRPC's parse copies their bytes instead of
    building a Struct per row (1 ms for 100 spambase rows) or a str per column and a float
    per value; StructRows parses records only if they are not uniform numbers, and
    dense_wire reads dense rows' usual layout by hand."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="modeld_server/predict_request_wire.proto", package="modeld_server.wire",
        syntax="proto3", dependency=[pb.DESCRIPTOR.name])
    message = proto.message_type.add()
    pb.PredictRequest.DESCRIPTOR.CopyToProto(message)
    message.name = "PredictRequestWire"
    for field in message.field:
        if field.name in ("records", "dense"):
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            field.ClearField("type_name")
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(proto.name)
    except KeyError:
        pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("modeld_server.wire.PredictRequestWire"))


PredictRequestWire = _wire_request()


class PredictWire:
    """Predict's request as the daemon parses it from the network (see server.py)."""

    @staticmethod
    def FromString(data: bytes) -> Any:
        """A PredictRequestWire, or a PredictRequest when that would lose part of `data`.

        Protobuf merges a message field sent more than once (the rows of both parts), but
        a bytes field keeps only the last part; such a parse, written out again, is shorter
        than `data` (so is a non-canonical encoding, which then takes the slow way too)."""
        request = PredictRequestWire.FromString(data)
        if request.ByteSize() != len(data):
            return pb.PredictRequest.FromString(data)
        return request

_templates: dict[int, tuple[_Template, ...]] = {}  # by row size, the latest first


class StructRows(Sequence[Mapping[str, Any]]):
    """Predict's records as a sequence of dicts (built only when asked for), plus
    `uniform_numbers()`, the fast numeric view.

    `records` is a RecordRows message, or its bytes as PredictRequestWire leaves them.
    """

    def __init__(self, records: pb.RecordRows | bytes) -> None:
        self._message = records if isinstance(records, pb.RecordRows) else None
        self._bytes = records if isinstance(records, bytes) else None
        self._count: int | None = None
        self._dicts: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        if self._count is None:
            by_hand = self._message is None and fastpaths.enabled()
            self._count = _uniform_count(self.wire()) if by_hand else None
            if self._count is None:
                self._count = len(self.message().rows)
        return self._count

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        return self.dicts()[index]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.dicts())

    def message(self) -> pb.RecordRows:
        """The RecordRows message, parsed from the bytes when it came as bytes."""
        if self._message is None:
            try:
                self._message = pb.RecordRows.FromString(self._bytes or b"")
            except DecodeError:
                raise InvalidArgument("records is not a valid RecordRows message") from None
        return self._message

    def wire(self) -> bytes:
        """The RecordRows message's bytes. When the message was parsed, serialised
        again, without deterministic=True, which sorts each map (twice the time): rows
        parsed from one key order serialise alike, and a row that does not simply fails
        to match a template."""
        if self._bytes is None:
            self._bytes = self.message().SerializeToString()
        return self._bytes

    def dicts(self) -> list[dict[str, Any]]:
        """Each row as a dict of Python scalars (nested values stay messages)."""
        if self._dicts is None:
            self._dicts = [_row_dict(i, row) for i, row in enumerate(self.message().rows)]
        return self._dicts

    def uniform_numbers(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        """(keys, float64 matrix with a column per key) when every row holds numbers
        under the same keys; None otherwise, or for no rows, or with the fast paths off."""
        if not fastpaths.enabled():
            return None
        data = self.wire()
        n = len(self)
        if not n or len(data) % n:
            return None
        stride = len(data) // n
        rows = np.frombuffer(data, dtype=np.uint8).reshape(n, stride)
        for template in _templates.get(stride, ()):
            if _matches(rows, template):
                return template.keys, _take(rows, template)
        parsed = _parse(data[:stride])
        if parsed is None or not _matches(rows, parsed):
            return None
        if len(_templates) >= 256:  # a bound, should callers vary their columns
            _templates.clear()
        # Replaced whole, never changed in place: other threads may be reading the old one.
        _templates[stride] = (parsed, *_templates.get(stride, ()))[:_KEEP]
        return parsed.keys, _take(rows, parsed)


def _row_dict(i: int, row: Any) -> dict[str, Any]:
    """One Struct row as a dict; a Value with no kind set (which protobuf's conversion
    refuses with a bare ValueError) is the caller's mistake, named by row and column."""
    try:
        return dict(row.items())
    except ValueError:
        for key, value in row.fields.items():
            if value.WhichOneof("kind") is None:
                raise InvalidArgument(f"rows[{i}].{clip(key)} is a Value with no kind set: "
                                      "send null_value for a missing value") from None
        raise


def _uniform_count(data: bytes) -> int | None:
    """How many rows `data` holds if all are framed alike (same size); None otherwise."""
    if not data:
        return 0
    at, size = varint(data, 1) if data[0] == _ROW_TAG else (0, -1)
    stride = at + size
    if size < 0 or len(data) % stride:
        return None
    if stride == len(data):  # one row, the commonest request: no NumPy needed
        return 1
    heads = np.frombuffer(data, dtype=np.uint8).reshape(-1, stride)[:, :at]
    return len(heads) if bool((heads == heads[0]).all()) else None


def _matches(rows: np.ndarray, template: _Template) -> bool:
    """Every row equals the template outside its doubles."""
    return bool(((rows & template.mask) == template.fixed).all())


def _take(rows: np.ndarray, template: _Template) -> np.ndarray:
    return np.ascontiguousarray(rows[:, template.doubles]).view("<f8")


def _parse(row: bytes) -> _Template | None:
    """The template of one framed row (tag, length, Struct), or None if any value is not
    a plain double or the bytes are not laid out as this module expects."""
    at, size = varint(row, 1) if row and row[0] == _ROW_TAG else (0, -1)
    if at + size != len(row):
        return None
    keys: list[str] = []
    offsets: list[int] = []
    while at < len(row):
        if row[at] != _ENTRY_TAG:
            return None
        at, entry_size = varint(row, at + 1)
        end = at + entry_size
        if at >= end or row[at] != _KEY_TAG:
            return None
        at, key_size = varint(row, at + 1)
        key_end = at + key_size
        if row[key_end: key_end + 3] != _NUMBER_VALUE or key_end + 11 != end:
            return None
        try:
            keys.append(row[at:key_end].decode("utf-8"))
        except UnicodeDecodeError:  # protobuf refuses it: let message() say so
            return None
        offsets.append(key_end + 3)
        at = end
    mask = np.full(len(row), 0xFF, dtype=np.uint8)
    doubles = (np.asarray(offsets, dtype=np.intp)[:, None] + np.arange(8)).ravel()
    mask[doubles] = 0
    fixed = np.frombuffer(row, dtype=np.uint8) & mask
    return _Template(tuple(keys), mask, fixed, doubles)


def varint(data: bytes, at: int) -> tuple[int, int]:
    """(position after, value) of the base-128 varint at `at`; (len, -1) if cut short."""
    value = shift = 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return at, value
        shift += 7
    return len(data), -1
