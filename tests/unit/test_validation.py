"""Reading a dataset in the worker: a broken file is the user's bad input, named, never INTERNAL."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from modeld_server.errors import InvalidArgument
from modeld_server.training.validation import load_checked

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
