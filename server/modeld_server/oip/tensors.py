"""V2 tensors: datatypes, element counts, and the raw (binary) form of numbers and BYTES.

Raw numbers are little-endian and row-major without padding; a raw BYTES tensor is each
element's length as a 4-byte little-endian unsigned integer followed by its bytes
(tritonclient's serialize_byte_tensor, MLServer's raw.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeld_server.errors import InvalidArgument, quoted

BYTES = "BYTES"
NUMBER_TYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code) for name, code in (
        ("BOOL", "?"), ("INT8", "<i1"), ("INT16", "<i2"), ("INT32", "<i4"), ("INT64", "<i8"),
        ("UINT8", "<u1"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT64", "<u8"),
        ("FP16", "<f2"), ("FP32", "<f4"), ("FP64", "<f8"),
    )
}
"""Every numeric V2 datatype and its little-endian NumPy dtype (BF16 is not taken)."""
MAX_DIMENSIONS = 2
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class Tensor:
    """One input as the protocol described it, its elements already decoded.

    `data` is flat: numbers as their NumPy dtype, BYTES as an object array of str, with
    None for a missing value (an empty element, or JSON null).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class Output:
    """One output: FP64 numbers or BYTES (an object array of str), and its parameters."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, str] = field(default_factory=dict)


def check_header(index: int, name: str, datatype: str, shape: tuple[int, ...]) -> int:
    """Checks a tensor's datatype and shape; returns its element count.

    Raises:
        InvalidArgument: an unknown datatype, a rank other than 1 or 2, a negative
            dimension; the message names the input.
    """
    where = f"inputs[{index}] {quoted(name)}"
    if datatype != BYTES and datatype not in NUMBER_TYPES:
        raise InvalidArgument(f"{where} has datatype {quoted(datatype)}: use FP32 or FP64 "
                              f"for numbers, BYTES for strings (or {', '.join(NUMBER_TYPES)})")
    if not 1 <= len(shape) <= MAX_DIMENSIONS or any(d < 0 for d in shape):
        raise InvalidArgument(f"{where} has shape {list(shape)}: send [N, F] for all columns "
                              "or [N] / [N, 1] per column")
    count = 1
    for d in shape:
        count *= d
    return count


def numbers_from_raw(index: int, name: str, datatype: str, shape: tuple[int, ...],
                     raw: bytes) -> np.ndarray:
    """A numeric tensor's elements from its raw bytes (no copy).

    Raises:
        InvalidArgument: the byte count does not match the shape, naming the input.
    """
    count = check_header(index, name, datatype, shape)
    dtype = NUMBER_TYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidArgument(
            f"inputs[{index}] {quoted(name)}: raw_input_contents[{index}] has {len(raw)} "
            f"bytes, but shape {list(shape)} of {datatype} needs {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype)


def strings_from_raw(index: int, name: str, shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """A BYTES tensor's elements from the length-prefixed raw form, decoded as UTF-8."""
    count = check_header(index, name, BYTES, shape)
    items: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end and len(items) <= count:
        if offset + 4 > end:
            break
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidArgument(
                f"inputs[{index}] {quoted(name)}: element {len(items)} of "
                f"raw_input_contents[{index}] claims {length} bytes, {end - offset} remain")
        items.append(raw[offset:offset + length])
        offset += length
    if len(items) != count or offset != end:
        raise InvalidArgument(
            f"inputs[{index}] {quoted(name)}: raw_input_contents[{index}] does not hold "
            f"{count} length-prefixed elements (shape {list(shape)}): each is a 4-byte "
            "little-endian length, then that many bytes")
    return strings_from_bytes(index, name, items)


def strings_from_bytes(index: int, name: str, items: list[bytes]) -> np.ndarray:
    """UTF-8 elements as an object array of str; an empty element is a missing value
    (as an empty CSV field is to the training data)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        try:
            out[i] = item.decode("utf-8") if item else None
        except UnicodeDecodeError:
            raise InvalidArgument(f"inputs[{index}] {quoted(name)} element {i} is not "
                                  "UTF-8 text") from None
    return out


def strings_to_raw(values: np.ndarray) -> bytes:
    """The length-prefixed raw form of a BYTES output."""
    encoded: dict[object, bytes] = {}  # labels repeat: a few classes, anomaly/normal
    parts = []
    for value in values.tolist():
        piece = encoded.get(value)
        if piece is None:
            data = str(value).encode("utf-8")
            piece = encoded[value] = _LENGTH.pack(len(data)) + data
        parts.append(piece)
    return b"".join(parts)


def output_to_raw(output: Output) -> bytes:
    """An output's raw bytes: little-endian doubles, or length-prefixed strings."""
    if output.datatype == BYTES:
        return strings_to_raw(output.data)
    return np.ascontiguousarray(output.data, dtype="<f8").tobytes()
