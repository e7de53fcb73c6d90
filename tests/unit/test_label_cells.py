"""A classification label's text taken from the scan's bytes is the text pandas reads."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeld_server import fastpaths
from modeld_server.training import label_cells, validation
from modeld_server.training.validation import load_checked, scan_lines

# Label cells pandas reads as numbers or booleans (one spelling or several), missing
# values, and cells too long for the scan to take.
_LABELS = ["0", "1", "2", "01", " 1", "1 ", "+1", "1.0", "-1", "", "nan", "NA", "True",
           "true", "False", "FALSE", "10", "123456789", "1.000000000"]


@pytest.fixture
def off() -> Iterator[None]:
    fastpaths.set_enabled(False)
    yield
    fastpaths.set_enabled(True)


def _typed(texts: dict[Any, str]) -> list[tuple[str, Any, str]]:
    """The mapping with each key's type: 1 and 1.0 and True are equal keys, but not the same."""
    return sorted((type(k).__name__, k, v) for k, v in texts.items())


def _listed(column: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in column]


def _both_ways(path: Path, label: str) -> tuple[Any, Any]:
    """load_checked's frame and label texts with the fast paths on, then off (pandas
    reading the label column as text)."""
    frame, on = load_checked(path, path.name, label=label)
    fastpaths.set_enabled(False)
    try:
        frame_off, off = load_checked(path, path.name, label=label)
    finally:
        fastpaths.set_enabled(True)
    pd.testing.assert_frame_equal(frame, frame_off)
    return _typed(on.label_texts), _typed(off.label_texts)


class TestAgainstPandas:
    @settings(deadline=None, max_examples=150)
    @given(cells=st.lists(st.sampled_from(_LABELS), min_size=1, max_size=30),
           at=st.sampled_from(["first", "last", "middle"]),
           crlf=st.booleans(), blank_line=st.booleans(), gz=st.booleans())
    def test_the_same_label_texts_as_pandas_reading_the_column(
        self, cells: list[str], at: str, crlf: bool, blank_line: bool, gz: bool
    ) -> None:
        """Whatever the spellings: several for one value (the commoner wins, ties as pandas
        orders them), missing cells, booleans, cells too long for the scan."""
        header = {"first": "y,a,b", "last": "a,b,y", "middle": "a,y,b"}[at]
        rows = [{"first": f"{c},{i},0.5", "last": f"{i},0.5,{c}", "middle": f"{i},{c},0.5"}[at]
                for i, c in enumerate(cells)]
        if blank_line:
            rows.insert(len(rows) // 2, "")
        end = "\r\n" if crlf else "\n"
        data = (header + end + end.join(rows) + end).encode()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("t.csv.gz" if gz else "t.csv")
            path.write_bytes(gzip.compress(data) if gz else data)
            on, off = _both_ways(path, "y")
        assert on == off

    @settings(deadline=None, max_examples=40)
    @given(cells=st.lists(st.sampled_from(_LABELS[:10]), min_size=1, max_size=40),
           block=st.integers(4, 40), last=st.booleans())
    def test_a_large_file_scanned_in_blocks_gives_the_same_texts(
        self, cells: list[str], block: int, last: bool
    ) -> None:
        header = "a,y" if last else "y,a"
        rows = [f"{i},{c}" if last else f"{c},{i}" for i, c in enumerate(cells)]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.csv"
            path.write_text(header + "\n" + "\n".join(rows) + "\n")
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(validation, "_FAST_SCAN_BYTES", 4)
                patch.setattr(validation, "_STREAM_BLOCK", block)
                on, off = _both_ways(path, "y")
        assert on == off

    def test_the_cells_are_the_column_pandas_reads_as_text(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("y,a\n1,5\n01,6\n\n NA,7\n,8\nTrue,9\n")
        bad, records, cells = scan_lines(path, "y")
        assert (bad, records) == ([], 5)
        assert cells is not None and not cells.last
        as_pandas = pd.read_csv(path, usecols=["y"], dtype=str)["y"]
        assert _listed(cells.series()) == _listed(as_pandas)


class TestWhenTheScanStepsAside:
    def test_a_middle_column_is_read_by_pandas(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y,b\n1,0,2\n3,1,4\n")
        assert scan_lines(path, "y")[2] is None

    def test_a_cell_longer_than_eight_bytes_is_read_by_pandas(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,0\n3,123456789\n")
        assert scan_lines(path, "y")[2] is None
        _, report = load_checked(path, path.name, label="y")
        assert report.label_texts == {0: "0", 123456789: "123456789"}

    def test_a_malformed_line_leaves_the_column_to_pandas(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,0\n2,7,extra\n3,1\n")
        assert scan_lines(path, "y") == ([3], 3, None)

    def test_quotes_leave_the_column_to_pandas(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text('a,y\n"x",0\n2,1\n')
        assert scan_lines(path, "y")[2] is None

    def test_off_the_scan_takes_no_cells(self, tmp_path: Path, off: None) -> None:
        path = tmp_path / "t.csv"
        path.write_text("a,y\n1,0\n3,1\n")
        assert scan_lines(path, "y")[2] is None


class TestLabelTexts:
    def test_one_spelling_per_value_needs_no_value_counts(self) -> None:
        cells = label_cells.Cells(["1", "0"], np.array([0, 1, 0]), last=True)
        values = pd.Series([1, 0, 1])
        assert label_cells.label_texts(values, cells) == {1: "1", 0: "0"}

    def test_several_spellings_are_left_to_value_counts(self) -> None:
        cells = label_cells.Cells(["1", "01"], np.array([0, 1, 0]), last=True)
        assert label_cells.label_texts(pd.Series([1, 1, 1]), cells) is None

    def test_spaces_around_a_cell_are_one_spelling(self) -> None:
        cells = label_cells.Cells(["1", " 1"], np.array([0, 1]), last=True)
        assert label_cells.label_texts(pd.Series([1, 1]), cells) == {1: "1"}

    def test_edge_keys_cut_the_first_and_last_cells(self) -> None:
        data = b"10,a,1.5\n,b,\n7,c,True\n"
        raw = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        starts = np.concatenate(([0], ends[:-1] + 1))
        first = label_cells.edge_keys(raw, starts, ends, last=False)
        last = label_cells.edge_keys(raw, starts, ends, last=True)
        assert first is not None and last is not None
        assert _listed(label_cells.cells_of(first, False).series()) == ["10", None, "7"]
        assert _listed(label_cells.cells_of(last, True).series()) == ["1.5", None, "True"]
