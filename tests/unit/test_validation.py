"""Reading a dataset in the worker: a broken file is the user's bad input, named, never INTERNAL."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeld_server.errors import InvalidArgument
from modeld_server.training import validation
from modeld_server.training.validation import (
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
            assert fast == _scan_records(path, open)

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


class TestConstantColumns:
    @pytest.mark.parametrize("values", [
        [1.0, 1.0, 1.0], [np.nan, np.nan], [1.0, np.nan], [0.0, -0.0], [1, 2], [3, 3],
        [True, True], [True, False], ["a", "a"], ["a", None], [None, None], [2**62, 2**62 + 1],
        [], [5.0],
    ])
    def test_agrees_with_nunique(self, values: list[object]) -> None:
        column = pd.Series(values)
        assert _constant(column) == (column.nunique(dropna=False) <= 1)
