"""dask_read: engine=dask's reader against the local engine's (multifile.load_checked
and validation.coerce_numeric_text) on the same files, with a real in-process Dask
cluster for what runs on workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modeld_server.errors import FailedPrecondition
from modeld_server.training import dask_read, multifile, validation
from modeld_server.training.datasets import DatasetFiles, resolve_files

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=":0") as running:
        yield running


def facts(columns: dict[str, tuple[str, int, int]], rows: int = 10) -> dict[str, Any]:
    """A file's counts: per column (kind, present cells, present cells that are numbers)."""
    return {"columns": list(columns), "rows": rows, "read": rows, "wrong": 0,
            "wrong_first": [], "kinds": {c: k for c, (k, _, _) in columns.items()},
            "present": {c: p for c, (_, p, _) in columns.items()},
            "numbers": {c: n for c, (_, _, n) in columns.items()}}


class TestColumnTypes:
    def test_numbers_in_every_file_are_float64_and_not_coerced(self) -> None:
        got = dask_read.column_types([facts({"a": ("num", 10, 10)})] * 2, frozenset())
        assert (got.dtypes, got.coerced) == ({"a": "float64"}, [])

    def test_text_of_mostly_numbers_over_all_files_is_coerced(self) -> None:
        """95% of the present cells over the whole dataset, not per file: 19 of 20."""
        got = dask_read.column_types([facts({"a": ("num", 10, 10)}),
                                      facts({"a": ("obj", 10, 9)})], frozenset())
        assert (got.dtypes, got.coerced) == ({"a": "float64"}, ["a"])

    def test_text_of_fewer_numbers_stays_text(self) -> None:
        got = dask_read.column_types([facts({"a": ("obj", 20, 18)})], frozenset())
        assert (got.dtypes, got.coerced) == ({"a": "object"}, [])

    def test_a_label_column_is_never_made_numbers(self) -> None:
        got = dask_read.column_types([facts({"y": ("obj", 100, 99)})], frozenset({"y"}))
        assert (got.dtypes, got.coerced) == ({"y": "object"}, [])

    def test_a_file_without_rows_says_nothing_about_the_types(self) -> None:
        """pandas leaves an empty frame out when it decides a stacked column's type."""
        got = dask_read.column_types([facts({"a": ("num", 10, 10)}),
                                      facts({"a": ("obj", 0, 0)}, rows=0)], frozenset())
        assert (got.dtypes, got.coerced) == ({"a": "float64"}, [])

    def test_booleans_stay_objects_and_columns_keep_first_seen_order(self) -> None:
        got = dask_read.column_types([facts({"b": ("bool", 10, 10)}),
                                      facts({"b": ("bool", 5, 5), "c": ("num", 5, 5)})],
                                     frozenset())
        assert got.dtypes == {"b": "object", "c": "float64"}


def local(data: Path | DatasetFiles, shown: str, labels: set[str]
          ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The local engine's frame and malformed entry (prepare's first two steps)."""
    frame, report = multifile.load_checked(data, shown)
    frame = validation.coerce_numeric_text(frame, report, labels)
    return frame, report.malformed


def on_dask(found: DatasetFiles, shown: str, client: Any, labels: set[str]
            ) -> tuple[pd.DataFrame, dict[str, Any]]:
    frame, malformed = dask_read.read_frame(found, shown, client, frozenset(labels))
    return client.compute(frame, sync=True).reset_index(drop=True), malformed


class TestSameRowsAsTheLocalEngine:
    def test_a_csv_glob_with_bad_lines_and_cells(self, tmp_path: Path, client: Any) -> None:
        """Wrong field counts and words in number columns, in several files: the same
        rows, values and malformed entry (lines sorted as text, as locally)."""
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "a.csv").write_text(
            "x,y,t\n" + "".join(f"{i},{i % 2},w{i % 3}\n" for i in range(40))
            + "oops,1,w\n1,2\n")
        (tmp_path / "c" / "b.csv").write_text(
            "x,y,t\n5,0,w\n6,1,w,9\n" + "".join(f"{i}.5,0,{i}\n" for i in range(30))
            + "7,1,?\n")
        found = resolve_files(tmp_path, "c/*.csv")
        want_frame, want = local(found, "c/*.csv", {"y"})
        frame, got = on_dask(found, "c/*.csv", client, {"y"})
        assert got == want == {"count": 3, "first_lines": ["a.csv:42", "a.csv:43", "b.csv:3"],
                               "action": "dropped", "wrong_field_count": 2,
                               "unparsable_numbers": 1}
        pd.testing.assert_frame_equal(frame, want_frame, check_dtype=False)

    def test_one_csv_file_names_lines_by_number(self, tmp_path: Path, client: Any) -> None:
        (tmp_path / "one.csv").write_text(
            "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(30)) + "1,1,1\nbad,0\n2,0\n")
        want_frame, want = local(tmp_path / "one.csv", "one.csv", {"y"})
        frame, got = on_dask(resolve_files(tmp_path, "one.csv"), "one.csv", client, {"y"})
        assert got == want == {"count": 2, "first_lines": [32, 33], "action": "dropped",
                               "wrong_field_count": 1, "unparsable_numbers": 1}
        pd.testing.assert_frame_equal(frame, want_frame, check_dtype=False)

    def test_a_file_of_malformed_lines_only(self, tmp_path: Path, client: Any) -> None:
        """Its rows are all dropped and counted; the other file's types stand."""
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "a.csv").write_text("x,y\n1,0\n2,1\n")
        (tmp_path / "c" / "b.csv").write_text("x,y\n1,0,1\n2,1,1\n")
        found = resolve_files(tmp_path, "c/*.csv")
        want_frame, want = local(found, "c/*.csv", {"y"})
        frame, got = on_dask(found, "c/*.csv", client, {"y"})
        assert got == want
        assert got["first_lines"] == ["b.csv:2", "b.csv:3"]
        pd.testing.assert_frame_equal(frame, want_frame, check_dtype=False)

    def test_lines_after_a_malformed_line_in_an_earlier_file_are_the_files_own(
            self, tmp_path: Path) -> None:
        """The local engine's names: a bad cell in the second file is named by its own
        line, whatever the first file dropped."""
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "a.csv").write_text("x,y\n1,0\n1,0,0\n2,1\n")
        (tmp_path / "c" / "b.csv").write_text("x,y\n" + "".join(f"{i},1\n" for i in range(30))
                                              + "no,1\n")
        _, malformed = local(resolve_files(tmp_path, "c/*.csv"), "c/*.csv", {"y"})
        assert malformed["first_lines"] == ["a.csv:3", "b.csv:32"]


class TestSha256:
    def test_the_local_engines_digest_for_a_glob_and_one_file(
            self, tmp_path: Path, client: Any) -> None:
        (tmp_path / "c").mkdir()
        for name in ("a.csv", "b.csv"):
            (tmp_path / "c" / name).write_text(f"x\n{name}\n")
        for shown in ("c/*.csv", "c/a.csv"):
            found = resolve_files(tmp_path, shown)
            futures = dask_read.start_sha256(found, client)
            got = dask_read.finish_sha256(found, shown, futures, client)
            want = multifile.sha256(found if len(found.files) > 1 else found.files[0])
            assert got == want

    def test_a_file_changed_during_the_job_fails_it(self, tmp_path: Path, client: Any) -> None:
        (tmp_path / "c").mkdir()
        for name in ("a.csv", "b.csv"):
            (tmp_path / "c" / name).write_text("x\n1\n")
        found = resolve_files(tmp_path, "c/*.csv")
        futures = dask_read.start_sha256(found, client)
        client.gather(futures)
        (tmp_path / "c" / "b.csv").write_text("x\n1\n2\n")
        os.utime(tmp_path / "c" / "b.csv", ns=(1, 1))
        with pytest.raises(FailedPrecondition) as err:
            dask_read.finish_sha256(found, "c/*.csv", futures, client)
        assert err.value.message == (
            "dataset.path 'c/*.csv': 'b.csv' changed during the job (its size or "
            "modification time is not what it was when the job read it): train again once "
            "the data is written")

    def test_a_file_removed_during_the_job_fails_it(self, tmp_path: Path, client: Any) -> None:
        (tmp_path / "c").mkdir()
        for name in ("a.csv", "b.csv"):
            (tmp_path / "c" / name).write_text("x\n1\n")
        found = resolve_files(tmp_path, "c/*.csv")
        futures = dask_read.start_sha256(found, client)
        client.gather(futures)
        (tmp_path / "c" / "a.csv").unlink()
        with pytest.raises(FailedPrecondition) as err:
            dask_read.finish_sha256(found, "c/*.csv", futures, client)
        assert err.value.message.startswith("dataset.path 'c/*.csv': 'a.csv' changed during "
                                            "the job")


class TestFilesFitAWorker:
    """A CSV or JSON Lines file is one partition on Dask: one that a worker cannot read is
    refused by name before anything is read."""

    def test_a_file_too_big_for_the_smallest_worker(self, tmp_path: Path) -> None:
        small, big = tmp_path / "a.csv", tmp_path / "b.csv.gz"
        small.write_bytes(b"x" * 100)
        big.write_bytes(b"x" * 100)
        dask_read.check_files_fit_a_worker("data/*.csv", [small], [0, 300, 1000])
        with pytest.raises(FailedPrecondition) as err:
            dask_read.check_files_fit_a_worker("data/*.csv", [small, big], [1600, 0, 1000])
        assert str(err.value) == (
            "dataset.path 'data/*.csv': 'b.csv.gz' holds about 500 bytes of text; on "
            "engine=dask each CSV or JSON Lines file is read whole by one worker, which needs "
            "3 times that, more than the smallest worker's memory_limit=1000 bytes: split it "
            "into smaller files, or write it as a Parquet folder")

    def test_workers_without_a_limit(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_bytes(b"x" * 10_000)
        dask_read.check_files_fit_a_worker("a.csv", [tmp_path / "a.csv"], [0, 0])
