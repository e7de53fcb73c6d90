"""Reading a dataset in the worker: a broken file is the user's bad input, named, never INTERNAL."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeld_server.errors import InvalidArgument
from modeld_server.training import validation
from modeld_server.training.validation import (
    _commas_before,
    _constant,
    _count_fields_unquoted,
    _scan_records,
    load_checked,
    malformed_lines,
)

ROOT = Path(__file__).resolve().parents[2]

ROWS = "a,b,species\n" + "1.5,2,x\n3,4.25,y\n" * 200


class TestLoadChecked:
    def test_a_gzipped_csv_reads_with_its_malformed_lines(self, tmp_path: Path) -> None:
        (tmp_path / "ok.csv.gz").write_bytes(gzip.compress((ROWS + "1,2,3,z\n").encode()))
        frame, report = load_checked(tmp_path / "ok.csv.gz", "ok.csv.gz")
        assert len(frame) == 400
        assert report.malformed["first_lines"] == [402]

    def test_a_truncated_gzip_is_invalid_argument_naming_the_file(self, tmp_path: Path) -> None:
        """The header decompresses, the rest ends early: EOFError, once 'Internal: EOFError'."""
        whole = gzip.compress(ROWS.encode())
        (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
        with pytest.raises(InvalidArgument) as err:
            load_checked(tmp_path / "cut.csv.gz", "data/cut.csv.gz")
        assert err.value.message == (
            "dataset.path 'data/cut.csv.gz' is not a readable CSV file: Compressed file ended "
            "before the end-of-stream marker was reached")

    def test_binary_bytes_after_a_good_header_are_invalid_argument(self, tmp_path: Path) -> None:
        (tmp_path / "mixed.csv").write_bytes(b"a,b\n1,2\n" + bytes(range(128, 256)) * 10)
        with pytest.raises(InvalidArgument,
                           match=r"^dataset\.path 'mixed\.csv' is not a readable CSV file: "
                                 r"'utf-8' codec can't decode"):
            load_checked(tmp_path / "mixed.csv", "mixed.csv")

    def test_a_truncated_parquet_file_is_invalid_argument(self, tmp_path: Path) -> None:
        pd.DataFrame({"a": range(100)}).to_parquet(tmp_path / "whole.parquet")
        whole = (tmp_path / "whole.parquet").read_bytes()
        (tmp_path / "cut.parquet").write_bytes(whole[: len(whole) // 2])
        with pytest.raises(InvalidArgument,
                           match=r"^dataset\.path 'cut\.parquet' is not a readable Parquet file: "):
            load_checked(tmp_path / "cut.parquet", "cut.parquet")


# Lines of a CSV file without quotes: fields of letters, digits and spaces; blank lines;
# and each line ending in \n or \r\n.
_FIELD = st.text(alphabet="ab1. -é", max_size=3)
_LINE = st.lists(_FIELD, min_size=0, max_size=4).map(",".join)


class TestMalformedLines:
    @settings(deadline=None)  # a temporary file per example: slow on a busy machine
    @given(header=st.lists(_FIELD, min_size=1, max_size=4).map(",".join).filter(bool),
           lines=st.lists(st.tuples(_LINE, st.sampled_from(["\n", "\r\n"])), max_size=12),
           last_newline=st.booleans())
    def test_the_numpy_count_agrees_with_the_csv_module(
        self, header: str, lines: list[tuple[str, str]], last_newline: bool
    ) -> None:
        text = header + "\n" + "".join(line + end for line, end in lines)
        if not last_newline:
            text = text.rstrip("\r\n")
        data = text.encode()
        fast = _count_fields_unquoted(data)
        assert fast is not None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.csv"
            path.write_bytes(data)
            assert fast == _scan_records(path)

    def test_spambase_has_no_malformed_line_and_4601_records(self) -> None:
        assert malformed_lines(ROOT / "data" / "spambase.csv") == ([], 4601)

    def test_quoted_files_go_through_the_csv_module(self, tmp_path: Path) -> None:
        """A quoted field may hold commas and line breaks: only the csv module counts those."""
        data = b'a,b\n"x,y",1\n"two\nlines",2\n3\n'
        assert _count_fields_unquoted(data) is None
        (tmp_path / "q.csv").write_bytes(data)
        assert malformed_lines(tmp_path / "q.csv") == ([5], 3)

    def test_a_wrong_field_count_is_reported_by_line_number(self, tmp_path: Path) -> None:
        (tmp_path / "w.csv").write_bytes(b"a,b\r\n1,2\r\n\r\n1,2,3\r\n4\r\n5,6")
        assert malformed_lines(tmp_path / "w.csv") == ([4, 5], 4)


    def test_files_beyond_the_fast_scan_size_go_through_the_csv_module(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(validation, "_FAST_SCAN_BYTES", 8)
        monkeypatch.setattr(validation, "_count_fields_unquoted", None)  # must not be called
        (tmp_path / "w.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n1\n3,4\n"))
        assert malformed_lines(tmp_path / "w.csv.gz") == ([3], 3)

    @settings(deadline=None, max_examples=60)
    @given(header=st.lists(_FIELD, min_size=1, max_size=4).map(",".join).filter(bool),
           lines=st.lists(st.tuples(_LINE, st.sampled_from(["\n", "\r\n"])), max_size=12),
           block=st.integers(1, 12), gz=st.booleans())
    def test_a_large_file_is_counted_in_blocks_as_the_csv_module_counts_it(
        self, header: str, lines: list[tuple[str, str]], block: int, gz: bool
    ) -> None:
        """Past the fast scan size a file is scanned a block of whole lines at a time
        (mapped, or read when gzipped): the same lines and records as the csv module."""
        data = (header + "\n" + "".join(line + end for line, end in lines)).encode()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("rows.csv.gz" if gz else "rows.csv")
            path.write_bytes(gzip.compress(data) if gz else data)
            expected = _scan_records(path)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(validation, "_FAST_SCAN_BYTES", 4)
                patch.setattr(validation, "_STREAM_BLOCK", block)
                assert malformed_lines(path) == expected


class TestCommasBefore:
    @settings(deadline=None)
    @given(text=st.text(alphabet=",\n1", max_size=300), cuts=st.lists(st.integers(0, 300)))
    def test_the_bit_count_agrees_with_the_comma_positions(
        self, text: str, cuts: list[int]
    ) -> None:
        """Counted 64 bytes to a word: right at word edges and at the very end."""
        raw = np.frombuffer(text.encode(), dtype=np.uint8)
        at = np.array(sorted({min(c, len(raw)) for c in cuts} | {len(raw)}), dtype=np.int64)
        expected = np.searchsorted(np.flatnonzero(raw == ord(",")), at)
        np.testing.assert_array_equal(_commas_before(raw, at), expected)


class TestDuplicatedRows:
    @settings(deadline=None)
    @given(rows=st.lists(st.tuples(st.sampled_from([0.0, -0.0, float("nan"), 1.5]),
                                   st.integers(0, 2), st.booleans(),
                                   st.sampled_from(["x", "y", None])), max_size=30),
           columns=st.sampled_from(["abcd", "abc", "d", "ad"]))
    def test_the_hashed_pass_agrees_with_pandas(self, rows: list[Any], columns: str) -> None:
        """-0.0 equals 0.0 and NaN equals NaN, as in DataFrame.duplicated."""
        frame = pd.DataFrame(rows, columns=list("abcd")).astype({"b": "int64", "c": "bool"})
        frame = frame[list(columns)]
        assert validation.duplicated_rows(frame).equals(frame.duplicated())


class TestConstantColumns:
    @pytest.mark.parametrize("values", [
        [1.0, 1.0, 1.0], [np.nan, np.nan], [1.0, np.nan], [0.0, -0.0], [1, 2], [3, 3],
        [True, True], [True, False], ["a", "a"], ["a", None], [None, None], [2**62, 2**62 + 1],
        [], [5.0],
    ])
    def test_agrees_with_nunique(self, values: list[object]) -> None:
        column = pd.Series(values)
        assert _constant(column) == (column.nunique(dropna=False) <= 1)


FILTERED = (
    "price,count,color,day,flag\n"
    "0,1,red,2024-01-01,true\n"
    "0.1,2,blue,2024-01-31,false\n"
    "0.10,3,green,2024-02-01T08:30:00,true\n"
    "1.5,10,red,2024-02-29,false\n"
    ",4,,2024-03-01,true\n"
    "2.25,,blue,,false\n"
    "1e-1,7,0,2023-12-31T23:59:59,true\n"
)


def selected(path: Path, *filters: dict[str, Any]) -> pd.DataFrame:
    """The rows the training path keeps: read and checked as a job reads them, then filtered."""
    frame, report = load_checked(path, path.name)
    frame = validation.coerce_numeric_text(frame, report, set())
    return validation.apply_selection(frame, validation.Selection(filters=filters), report)


def day(frame: pd.DataFrame) -> pd.Series:
    """pandas' own reading of the day column: ISO-8601 dates and timestamps, in UTC."""
    return pd.to_datetime(frame["day"], format="ISO8601", utc=True)


UTC = "UTC"
FILTER_CASES: list[tuple[dict[str, Any], Any]] = [
    # "0" is the file's 0; 0.1 is written "0.1", "0.10" and "1e-1"
    ({"column": "price", "values": ["0", "0.1"]}, lambda f: f["price"].isin([0, 0.1])),
    ({"column": "price", "values": ["1.50", "2.25e0"]}, lambda f: f["price"].isin([1.5, 2.25])),
    ({"column": "count", "values": ["1", "3.0", "10"]}, lambda f: f["count"].isin([1, 3, 10])),
    ({"column": "color", "values": ["red", "blue"]},
     lambda f: f["color"].isin(["red", "blue"])),
    ({"column": "color", "values": ["0"]}, lambda f: f["color"] == "0"),  # text, as written
    ({"column": "price", "range": {"min": 0.1, "max": 1.5}},
     lambda f: f["price"].between(0.1, 1.5)),
    ({"column": "price", "range": {"min": None, "max": 0.1}}, lambda f: f["price"] <= 0.1),
    ({"column": "count", "range": {"min": 3, "max": None}}, lambda f: f["count"] >= 3),
    ({"column": "count", "range": {"min": 2.5, "max": 7.5}},
     lambda f: f["count"].between(2.5, 7.5)),
    ({"column": "day", "dates": {"start": "2024-01-31", "end": "2024-02-29"}},
     lambda f: day(f).between(pd.Timestamp("2024-01-31", tz=UTC),
                              pd.Timestamp("2024-03-01", tz=UTC), inclusive="left")),
    ({"column": "day", "dates": {"start": "", "end": "2024-02-01"}},
     lambda f: day(f) < pd.Timestamp("2024-02-02", tz=UTC)),
    ({"column": "day", "dates": {"start": "2024-01-01", "end": ""}},
     lambda f: day(f) >= pd.Timestamp("2024-01-01", tz=UTC)),
    ({"column": "day", "dates": {"start": "", "end": "2024-02-01T08:30:00"}},
     lambda f: day(f) <= pd.Timestamp("2024-02-01T08:30:00", tz=UTC)),
]


class TestFilters:
    """Each filter kind keeps exactly the rows plain pandas keeps on the same file."""

    @pytest.mark.parametrize(("flt", "keep"), FILTER_CASES,
                             ids=[f"{f['column']}-{i}" for i, (f, _) in enumerate(FILTER_CASES)])
    def test_agrees_with_pandas(self, tmp_path: Path, flt: dict[str, Any], keep: Any) -> None:
        path = tmp_path / "f.csv"
        path.write_text(FILTERED)
        frame = pd.read_csv(path)
        expected = frame.loc[keep(frame).fillna(False).astype(bool)].reset_index(drop=True)
        assert 0 < len(expected) < len(frame)
        pd.testing.assert_frame_equal(selected(path, flt), expected)

    def test_true_and_false_match_in_any_case(self, tmp_path: Path) -> None:
        path = tmp_path / "f.csv"
        path.write_text(FILTERED)
        kept = selected(path, {"column": "flag", "values": ["TRUE"]})
        expected = pd.read_csv(path)
        pd.testing.assert_frame_equal(kept, expected[expected["flag"]].reset_index(drop=True))

    def test_a_value_set_on_spambase_keeps_what_pandas_keeps(self) -> None:
        """word_freq_make in {0, 0.1}: 3,599 rows, where comparing text kept 51."""
        path = ROOT / "data" / "spambase.csv"
        frame = pd.read_csv(path)
        expected = frame[frame["word_freq_make"].isin([0, 0.1])].reset_index(drop=True)
        kept = selected(path, {"column": "word_freq_make", "values": ["0", "0.1"]})
        assert len(kept) == len(expected) == 3599
        pd.testing.assert_frame_equal(kept, expected)

    @pytest.mark.parametrize(("flt", "message"), [
        ({"column": "color", "range": {"min": 1, "max": None}},
         "dataset.filters[1]: column 'color' holds text, not numbers (e.g. 'red'): a range "
         "needs a numeric column"),
        ({"column": "price", "dates": {"start": "2024-01-01", "end": ""}},
         "dataset.filters[1]: column 'price' holds numbers, not ISO-8601 dates (e.g. '0.0')"),
        ({"column": "count", "values": ["1", "one"]},
         "dataset.filters[1].values 'one' is not a number, and column 'count' holds numbers"),
    ])
    def test_a_filter_that_cannot_apply_to_its_column_names_both(
            self, tmp_path: Path, flt: dict[str, Any], message: str) -> None:
        path = tmp_path / "f.csv"
        path.write_text(FILTERED)
        with pytest.raises(InvalidArgument) as err:
            selected(path, {"column": "count", "range": {"min": 0, "max": None}}, flt)
        assert str(err.value) == message


class TestLabelTexts:
    """A classification target's labels are the file's text, not pandas' numbers."""

    def test_a_blank_cell_does_not_turn_labels_into_floats(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,0\n2,\n3,1\n4,2\n5,10\n")
        frame, report = load_checked(path, path.name, label="y")
        assert frame["y"].dtype == np.float64  # what pandas makes of it
        as_text = pd.read_csv(path, dtype={"y": str})["y"].dropna()
        assert [report.label(v) for v in frame["y"].dropna()] == as_text.tolist()

    def test_two_spellings_of_one_number_take_the_commoner(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,1.0\n2,1\n3,1\n4,1.5\n")
        _, report = load_checked(path, path.name, label="y")
        assert (report.label(1.0), report.label(1.5)) == ("1", "1.5")

    def test_malformed_lines_are_skipped_in_both_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,0\n2,7,extra\n3,1\n")
        _, report = load_checked(path, path.name, label="y")
        assert report.label_texts == {0: "0", 1: "1"}

    def test_text_labels_need_no_second_read(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,yes\n2,\n3,no\n")
        _, report = load_checked(path, path.name, label="y")
        assert report.label_texts == {} and report.label("yes") == "yes"

    def test_an_integer_parquet_column_with_nulls_keeps_integer_labels(
            self, tmp_path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "t.parquet"  # written by Arrow: no pandas metadata to restore Int64
        pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "y": pa.array([0, None, 1])}), path)
        frame, report = load_checked(path, path.name, label="y")
        assert frame["y"].dtype == np.float64
        assert [report.label(v) for v in frame["y"].dropna()] == ["0", "1"]
