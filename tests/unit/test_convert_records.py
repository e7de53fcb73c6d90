"""Records read from their wire bytes give exactly what the dict path gives, or step aside."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.errors import InvalidArgument
from modeld_server.features import FeatureSchema
from modeld_server.rpc.convert import records_from_pb
from modeld_server.rpc.struct_rows import StructRows

SPAMBASE = Path(__file__).resolve().parents[2] / "data" / "spambase.csv"


def records(rows: list[dict[str, Any]]) -> pb.RecordRows:
    """As the daemon sees them: built, sent over the wire, parsed."""
    message = pb.PredictRequest(model="m")
    for row in rows:
        message.records.rows.add().update(row)
    return pb.PredictRequest.FromString(message.SerializeToString()).records


def both_ways(schema: FeatureSchema, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """matrix_from_records through the fast view and through plain dicts: the matrix, or
    the InvalidArgument message."""
    out = []
    for given in (records_from_pb(records(rows)), StructRows(records(rows)).dicts()):
        try:
            out.append(schema.matrix_from_records(given))
        except InvalidArgument as exc:
            out.append(exc.message)
    return out[0], out[1]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if a.dtype == object:
        return b.dtype == object and str(a.tolist()) == str(b.tolist())
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.fixture(scope="module")
def spam() -> tuple[FeatureSchema, pd.DataFrame]:
    frame = pd.read_csv(SPAMBASE)
    features = [c for c in frame.columns if c != "is_spam"]
    return FeatureSchema(tuple(features), (), "is_spam"), frame


class TestUniformNumbers:
    def test_spambase_rows_read_from_bytes_equal_the_rows(
            self, spam: tuple[FeatureSchema, pd.DataFrame]) -> None:
        schema, frame = spam
        x = frame[list(schema.numeric)].to_numpy()
        for n in (1, 2, 100):
            rows = [dict(zip(schema.numeric, r.tolist(), strict=True)) for r in x[:n]]
            found = StructRows(records(rows)).uniform_numbers()
            assert found is not None
            keys, values = found
            assert values.dtype == np.float64 and values.flags.c_contiguous
            assert np.array_equal(values[:, [keys.index(c) for c in schema.numeric]], x[:n])
            assert np.array_equal(schema.matrix_from_records(records_from_pb(records(rows))), x[:n])

    @pytest.mark.parametrize("value", [0.0, -0.0, math.nan, 1e308, -5e-324, 3.5, 2.0**60])
    def test_every_double_survives_bit_for_bit(self, value: float) -> None:
        found = StructRows(records([{"a": 1.0, "b": value}])).uniform_numbers()
        assert found is not None
        keys, values = found
        got = values[0, keys.index("b")]
        assert np.float64(got).tobytes() == np.float64(value).tobytes()

    def test_long_keys_and_many_columns_with_multi_byte_lengths(self) -> None:
        """Keys over 127 bytes and rows over 16 KiB take varints of two and three bytes."""
        names = [f"{'é' * 70}{i}" for i in range(300)]
        rows = [{name: float(i * j) for j, name in enumerate(names)} for i in range(3)]
        schema = FeatureSchema(tuple(names), ())
        assert StructRows(records(rows)).uniform_numbers() is not None
        assert same(*both_ways(schema, rows))

    @pytest.mark.parametrize("odd", [None, True, "1.5", {"x": 1}, [1.0]],
                             ids=["null", "bool", "string", "struct", "list"])
    def test_a_value_that_is_not_a_double_steps_aside(self, odd: Any) -> None:
        rows = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": odd}]
        assert StructRows(records(rows)).uniform_numbers() is None
        assert StructRows(records(rows[::-1])).uniform_numbers() is None

    def test_rows_with_other_keys_step_aside(self) -> None:
        assert StructRows(records([{"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0}])
                          ).uniform_numbers() is None
        assert StructRows(records([{"a": 1.0, "b": 2.0}, {"a": 1.0}])).uniform_numbers() is None

    def test_no_rows_and_an_empty_row(self) -> None:
        assert StructRows(records([])).uniform_numbers() is None
        found = StructRows(records([{}])).uniform_numbers()
        assert found is not None and found[0] == () and found[1].shape == (1, 0)

    def test_a_template_seen_before_serves_new_values(self) -> None:
        first = StructRows(records([{"p": 1.0, "q": 2.0}])).uniform_numbers()
        again = StructRows(records([{"p": 7.0, "q": 8.0}] * 3)).uniform_numbers()
        assert first is not None and again is not None
        assert again[0] == first[0]
        assert again[1][:, [again[0].index("p"), again[0].index("q")]].tolist() == [[7, 8]] * 3


class TestSameAsTheDictPath:
    """Whatever the rows, matrix_from_records answers the same matrix or the same error."""

    SCHEMA = FeatureSchema(("a", "b", "c"), (), "y")

    @pytest.mark.parametrize("rows", [
        [{"a": 1.0, "b": 2.0, "c": 3.0}],
        [{"c": 3.0, "a": 1.0, "b": 2.0}, {"b": 5.0, "c": 6.0, "a": 4.0}],
        [{"a": 1.0, "b": 2.0, "c": 3.0, "y": 1.0}],
        [{"a": 1.0, "b": math.nan, "c": 3.0}],
        [{"a": 1.0, "b": math.inf, "c": 3.0}],
        [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0, "b": 2.0, "c": -math.inf}],
        [{"a": 1.0, "b": 2.0}],
        [{"a": 1.0, "b": 2.0, "c": 3.0, "z": 4.0}],
        [{"a": 1.0, "b": 2.0, "c": None}],
        [{"a": 1.0, "b": True, "c": 3.0}],
        [{"a": 1.0, "b": "x", "c": 3.0}],
        [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0, "b": 2.0, "d": 3.0}],
    ], ids=["plain", "key-order", "target", "nan", "inf", "inf-row-1", "missing", "unknown",
            "null", "bool", "string", "other-keys"])
    def test_numeric_schema(self, rows: list[dict[str, Any]]) -> None:
        fast, plain = both_ways(self.SCHEMA, rows)
        assert same(fast, plain), (fast, plain)

    def test_a_categorical_schema_keeps_the_dict_path(self) -> None:
        schema = FeatureSchema(("a",), ("kind",))
        fast, plain = both_ways(schema, [{"a": 1.0, "kind": 2.0}])
        assert same(fast, plain) and fast.dtype == object and fast[0, 1] == "2"

    def test_the_sequence_view_is_the_rows_as_dicts(self) -> None:
        rows = [{"a": 1.0, "b": None}, {"a": 2.5, "b": "x"}]
        view = records_from_pb(records(rows))
        assert len(view) == 2 and list(view) == rows and view[1] == rows[1]


class TestFromTheWire:
    """The daemon parses Predict as PredictRequestWire: records come as their bytes."""

    def wire(self, rows: list[dict[str, Any]]) -> bytes:
        from modeld_server.rpc.struct_rows import PredictRequestWire

        message = pb.PredictRequest(model="m", version=2)
        message.records.SetInParent()
        for row in rows:
            message.records.rows.add().update(row)
        parsed = PredictRequestWire.FromString(message.SerializeToString())
        assert (parsed.model, parsed.version, parsed.WhichOneof("rows")) == ("m", 2, "records")
        assert isinstance(parsed.records, bytes)
        return bytes(parsed.records)

    def test_uniform_rows_never_build_a_message(self, monkeypatch: pytest.MonkeyPatch) -> None:
        rows = [{"a": float(i), "b": -1.0} for i in range(5)]
        view = StructRows(self.wire(rows))
        monkeypatch.setattr(pb.RecordRows, "FromString", lambda data: pytest.fail("parsed"))
        assert len(view) == 5
        found = view.uniform_numbers()
        assert found is not None
        keys, values = found
        assert values[:, [keys.index("a"), keys.index("b")]].tolist() == [
            [float(i), -1.0] for i in range(5)]

    @pytest.mark.parametrize("rows", [
        [], [{"a": 1.0}, {"a": 2.0, "b": 3.0}], [{"a": None}, {"a": "x"}], [{}],
    ], ids=["none", "uneven", "other-kinds", "empty-row"])
    def test_any_rows_count_and_read_as_from_the_message(self, rows: list[dict[str, Any]]) -> None:
        view = StructRows(self.wire(rows))
        assert len(view) == len(rows) and view.dicts() == rows
        fast, plain = both_ways(FeatureSchema(("a",), ()), rows) if rows else (0, 0)
        assert same(fast, plain) if rows else True

    def test_bytes_that_are_not_a_record_rows_message_are_invalid_argument(self) -> None:
        for garbage in (b"\x0a\x05\x0a\x03\x0a\x01", b"\xff\xff\xff"):
            with pytest.raises(InvalidArgument, match="records is not a valid RecordRows"):
                FeatureSchema(("a",), ()).matrix_from_records(StructRows(garbage))

    def test_a_key_that_is_not_utf8_is_refused_like_protobuf_does(self) -> None:
        key = b"\xff\xfe"
        value = b"\x12\x09\x11" + bytes(8)
        entry = b"\x0a" + bytes([len(key)]) + key + value
        struct = b"\x0a" + bytes([len(entry)]) + entry
        data = b"\x0a" + bytes([len(struct)]) + struct
        assert StructRows(data).uniform_numbers() is None
        with pytest.raises(InvalidArgument):
            FeatureSchema(("a",), ()).matrix_from_records(StructRows(data))


class TestValueWithNoKind:
    """A Struct field whose Value has no kind set is INVALID_ARGUMENT naming row and
    column, whether the rows came as bytes (the daemon's PredictRequestWire, where the
    fast path steps aside) or as a RecordRows message (once INTERNAL: protobuf's
    conversion raised a bare ValueError 'Value not set')."""

    SCHEMA = FeatureSchema.infer(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "y": [0, 1]}),
                                 ["a", "b"], "y")

    def rows(self) -> pb.RecordRows:
        message = pb.RecordRows()
        message.rows.add().update({"a": 1.0, "b": 2.0})
        empty = message.rows.add()
        empty.update({"a": 1.0})
        empty.fields["b"].Clear()  # present, with no kind
        return pb.RecordRows.FromString(message.SerializeToString())

    @pytest.mark.parametrize("form", ["bytes", "message"])
    def test_both_paths_name_row_and_column(self, form: str) -> None:
        given = self.rows()
        rows = StructRows(given.SerializeToString() if form == "bytes" else given)
        with pytest.raises(InvalidArgument) as err:
            self.SCHEMA.matrix_from_records(rows)
        assert err.value.message == (
            "rows[1].b is a Value with no kind set: send null_value for a missing value")

    def test_an_entry_without_a_value_reads_the_same(self) -> None:
        """A map entry carrying only its key parses to an empty Value too."""
        row = b"\n\x03\n\x01a"  # Struct entry: key 'a', no value field
        data = bytes([0x0A, len(row)]) + row
        with pytest.raises(InvalidArgument) as err:
            self.SCHEMA.matrix_from_records(StructRows(data))
        assert err.value.message == (
            "rows[0].a is a Value with no kind set: send null_value for a missing value")
