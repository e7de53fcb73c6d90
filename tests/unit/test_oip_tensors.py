"""V2 tensors: headers, raw numbers and length-prefixed BYTES, with precise refusals."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from modeld_server.errors import InvalidArgument
from modeld_server.oip.tensors import (
    Output,
    check_header,
    numbers_from_raw,
    output_to_raw,
    strings_from_raw,
)


class TestHeader:
    def test_counts_elements(self) -> None:
        assert check_header(0, "x", "FP32", (3, 4)) == 12
        assert check_header(0, "x", "BYTES", (0,)) == 0

    @pytest.mark.parametrize(("datatype", "shape", "details"), [
        ("FLOAT", (1,), "inputs[2] 'x' has datatype 'FLOAT': use FP32 or FP64 for numbers, "
                        "BYTES for strings (or BOOL, INT8, INT16, INT32, INT64, UINT8, UINT16, "
                        "UINT32, UINT64, FP16, FP32, FP64)"),
        ("FP64", (1, 2, 3), "inputs[2] 'x' has shape [1, 2, 3]: send [N, F] for all columns "
                            "or [N] / [N, 1] per column"),
        ("FP64", (), "inputs[2] 'x' has shape []: send [N, F] for all columns or [N] / [N, 1] "
                     "per column"),
        ("FP64", (-1, 2), "inputs[2] 'x' has shape [-1, 2]: send [N, F] for all columns or "
                          "[N] / [N, 1] per column"),
    ])
    def test_refusals_name_the_input(self, datatype: str, shape: tuple[int, ...],
                                     details: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            check_header(2, "x", datatype, shape)
        assert err.value.message == details


class TestRawNumbers:
    def test_little_endian_without_copy(self) -> None:
        data = np.arange(6, dtype="<f4").reshape(2, 3)
        got = numbers_from_raw(0, "x", "FP32", (2, 3), data.tobytes())
        assert got.tolist() == data.ravel().tolist() and got.dtype == np.dtype("<f4")

    def test_wrong_size(self) -> None:
        with pytest.raises(InvalidArgument) as err:
            numbers_from_raw(1, "x", "INT64", (2,), b"\0" * 15)
        assert err.value.message == ("inputs[1] 'x': raw_input_contents[1] has 15 bytes, but "
                                     "shape [2] of INT64 needs 16")


class TestRawBytes:
    def test_reads_what_tritonclient_writes(self) -> None:
        values = np.array([b"red", b"", "gr\u00fcn".encode()], dtype=object)
        raw = serialize_byte_tensor(values).item()  # a 0-d object array holding bytes
        assert strings_from_raw(0, "c", (3, 1), raw).tolist() == ["red", None, "gr\u00fcn"]

    def test_writes_what_tritonclient_reads(self) -> None:
        raw = output_to_raw(Output("label", "BYTES", (2,), np.array(["yes", "no"], object)))
        assert deserialize_bytes_tensor(raw).tolist() == [b"yes", b"no"]

    @pytest.mark.parametrize(("raw", "details"), [
        (b"\x05\0\0\0ab", "inputs[0] 'c': element 0 of raw_input_contents[0] claims 5 bytes, "
                          "2 remain"),
        (b"\x01\0\0\0a", "inputs[0] 'c': raw_input_contents[0] does not hold 2 length-prefixed "
                         "elements (shape [2]): each is a 4-byte little-endian length, then "
                         "that many bytes"),
        (b"\x01\0\0\0a\x01\0\0\0b\x01", "inputs[0] 'c': raw_input_contents[0] does not hold 2 "
                                        "length-prefixed elements (shape [2]): each is a 4-byte "
                                        "little-endian length, then that many bytes"),
        (b"\x01\0\0\0\xff\x01\0\0\0b", "inputs[0] 'c' element 0 is not UTF-8 text"),
    ])
    def test_malformed(self, raw: bytes, details: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            strings_from_raw(0, "c", (2,), raw)
        assert err.value.message == details

    def test_numbers_out_are_little_endian_doubles(self) -> None:
        raw = output_to_raw(Output("value", "FP64", (2,), np.array([1.5, -2.0])))
        assert np.frombuffer(raw, "<f8").tolist() == [1.5, -2.0]
