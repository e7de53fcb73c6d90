"""Dense rows read from their wire bytes equal protobuf's parse of the same bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import fastpaths
from modeld_server.errors import InvalidArgument
from modeld_server.rpc import dense_wire


@pytest.fixture(autouse=True)
def no_remembered_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(dense_wire, "_blocks", ())
    yield


def by_protobuf(raw: bytes) -> tuple[tuple[str, ...], np.ndarray]:
    message = pb.DenseRows.FromString(raw)
    return tuple(message.columns), np.asarray(message.values, dtype=np.float64)


def same(raw: bytes) -> None:
    """The fast read, protobuf's parse and the --no-fast-paths read agree bit for bit."""
    expected_columns, expected = by_protobuf(raw)
    for fast in (True, False):
        fastpaths.set_enabled(fast)
        try:
            columns, values = dense_wire.dense_rows(raw)
        finally:
            fastpaths.set_enabled(True)
        got = np.asarray(values, dtype=np.float64)
        assert tuple(columns) == expected_columns
        assert got.tobytes() == expected.tobytes()  # NaN payloads and -0.0 too


def field(number: int, wire_type: int, payload: bytes) -> bytes:
    tag = bytes([number << 3 | wire_type])
    if wire_type == 2:
        return tag + _varint(len(payload)) + payload
    return tag + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def doubles(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


@settings(max_examples=300, deadline=None)
@given(columns=st.lists(st.text(max_size=40), max_size=70),
       values=st.lists(st.floats(allow_nan=True), max_size=300))
def test_any_message_protobuf_writes(columns: list[str], values: list[float]) -> None:
    raw = pb.DenseRows(columns=columns, values=values).SerializeToString()
    assert dense_wire._from_bytes(raw) is not None  # read by hand, not by protobuf
    same(raw)
    same(raw)  # the second time from the remembered block


def _agree_or_both_refuse(raw: bytes) -> None:
    try:
        pb.DenseRows.FromString(raw)
    except DecodeError:
        with pytest.raises(InvalidArgument):
            dense_wire.dense_rows(raw)
        return
    same(raw)


_PIECES = st.one_of(
    st.builds(lambda s, pad: b"\x0a" + _padded(len(s), pad) + s,
              st.binary(max_size=4), st.integers(0, 6)),
    st.builds(lambda n, pad, extra: b"\x12" + _padded(8 * n + extra, pad)
              + b"\x01" * (8 * n + extra),
              st.integers(0, 3), st.integers(0, 6), st.integers(0, 1)),
    st.builds(lambda x: b"\x11" + doubles(x), st.floats()),
    st.sampled_from([b"\x0a", b"\x12", b"\x80", b"\x08\x01", b"\x0b\x0c",
                     b"\x12\xff\xff\xff\xff\x0f"]),
)


def _padded(value: int, pad: int) -> bytes:
    """`value` as a varint padded with `pad` redundant bytes (legal up to 5 bytes in all)."""
    out = bytearray(_varint(value))
    if pad:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=6))
def test_any_sequence_of_fields_even_malformed(pieces: list[bytes]) -> None:
    """Fields of every kind, lengths padded past what protobuf takes, cut short: the
    same rows as protobuf's, or refused as protobuf refuses them."""
    raw = b"".join(pieces)
    _agree_or_both_refuse(raw)
    _agree_or_both_refuse(raw)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=40))
def test_any_bytes(raw: bytes) -> None:
    _agree_or_both_refuse(raw)


class TestOtherLayouts:
    """Legal encodings no serializer writes by default: protobuf parses them."""

    def test_none_of_them_is_read_by_hand(self) -> None:
        for raw in (field(1, 2, b"a") + field(2, 1, doubles(1.5)),
                    field(2, 2, doubles(1)) + field(2, 2, doubles(2)),
                    field(2, 2, doubles(1)) + field(1, 2, b"a"),
                    field(1, 2, b"a") + field(2, 2, doubles(7.0)) + field(9, 2, b"zz")):
            assert dense_wire._from_bytes(raw) is None

    def test_unpacked_doubles(self) -> None:
        same(field(1, 2, b"a") + field(2, 1, doubles(1.5)) + field(2, 1, doubles(-2.0)))

    def test_values_split_over_two_packed_fields(self) -> None:
        same(field(1, 2, b"a") + field(1, 2, b"b") + field(2, 2, doubles(1, 2))
             + field(2, 2, doubles(3, 4)))

    def test_columns_after_the_values(self) -> None:
        same(field(2, 2, doubles(1, 2)) + field(1, 2, b"a") + field(1, 2, b"b"))

    def test_an_unknown_field_before_or_after(self) -> None:
        body = field(1, 2, b"a") + field(2, 2, doubles(7.0))
        same(field(9, 0, b"\x05") + body)
        same(body + field(9, 2, b"zz"))

    def test_a_remembered_block_followed_by_more_columns(self) -> None:
        """["a", "b"] remembered; ["a", "b", "c"] starts with its bytes but has 3 columns."""
        same(pb.DenseRows(columns=["a", "b"], values=[1, 2]).SerializeToString())
        same(pb.DenseRows(columns=["a", "b", "c"], values=[1, 2, 3]).SerializeToString())
        same(pb.DenseRows(columns=["a", "b"], values=[5, 6, 7, 8]).SerializeToString())

    def test_nothing_at_all(self) -> None:
        same(b"")


class TestInvalidBytes:
    @pytest.mark.parametrize("raw", [
        b"\xff\xff\xff",  # garbage
        field(1, 2, b"ab")[:-1],  # a column cut short
        field(1, 2, b"\xff\xfe"),  # a column that is not UTF-8
        field(1, 2, b"a") + b"\x12\x05" + b"\x00" * 5,  # 5 bytes of packed doubles
        field(1, 2, b"a") + b"\x12\x80",  # a length cut short
        # A length in 6 bytes: protobuf takes at most 5 (a 32-bit size), whatever its value.
        field(1, 2, b"a") + b"\x12\x88\x80\x80\x80\x80\x00" + doubles(1.5),
        b"\x12\x80\x80\x80\x80\x80\x00",
    ])
    def test_invalid_argument_naming_the_field(self, raw: bytes) -> None:
        for fast in (True, False):
            fastpaths.set_enabled(fast)
            try:
                with pytest.raises(InvalidArgument,
                                   match=r"^dense is not a valid DenseRows message$"):
                    dense_wire.dense_rows(raw)
            finally:
                fastpaths.set_enabled(True)


def test_the_values_are_a_writable_native_float64_array() -> None:
    raw = pb.DenseRows(columns=["a"], values=[1.0, 2.0]).SerializeToString()
    _, values = dense_wire.dense_rows(raw)
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
    assert values.flags.writeable and values.dtype.isnative


def test_blocks_remembered_are_bounded() -> None:
    for i in range(3 * dense_wire._KEEP):
        dense_wire.dense_rows(pb.DenseRows(columns=[f"c{i}"], values=[1.0]).SerializeToString())
    assert len(dense_wire._blocks) == dense_wire._KEEP
    assert dense_wire._blocks[0][1] == (f"c{3 * dense_wire._KEEP - 1}",)
