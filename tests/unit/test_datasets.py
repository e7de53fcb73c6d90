"""Dataset paths resolve under the data root or are refused precisely, whatever the OS says."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from modeld_server.errors import InvalidArgument, ModeldError, NotFound, PermissionDenied
from modeld_server.training.datasets import resolve_dataset
from modeld_server.training.sample import (
    MAX_COLUMNS,
    MAX_HEADER_BYTES,
    read_columns,
    read_sample,
)

IRIS = "a,b,species\n1,2,x\n3,4,y\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "iris.csv").write_text(IRIS)
    return data


def refusal(root: Path, path: str) -> tuple[type[ModeldError], str]:
    with pytest.raises(ModeldError) as err:
        resolve_dataset(root, path)
    return type(err.value), err.value.message


class TestResolve:
    def test_a_file_under_the_root_resolves(self, root: Path) -> None:
        assert resolve_dataset(root, "./iris.csv") == (root / "iris.csv").resolve()

    def test_a_component_over_255_bytes_is_invalid_argument(self, root: Path) -> None:
        """ENAMETOOLONG from the lookup, once INTERNAL; the path is quoted cut short."""
        assert refusal(root, "a" * 300 + ".csv") == (
            InvalidArgument,
            f"dataset.path {'a' * 80!r}... (304 characters) cannot be looked up: "
            "File name too long")

    def test_a_path_over_path_max_is_invalid_argument(self, root: Path) -> None:
        kind, message = refusal(root, "a/" * 3000 + "x.csv")
        assert kind is InvalidArgument
        assert message.endswith("... (6005 characters) cannot be looked up: File name too long")

    def test_a_symlink_loop_is_invalid_argument(self, root: Path) -> None:
        """Path.resolve() raises RuntimeError on Python 3.11: once INTERNAL."""
        (root / "loop.csv").symlink_to("loop.csv")
        assert refusal(root, "loop.csv") == (InvalidArgument,
                                             "dataset.path 'loop.csv' is a symlink loop")

    def test_a_two_link_loop_is_invalid_argument(self, root: Path) -> None:
        (root / "a.csv").symlink_to("b.csv")
        (root / "b.csv").symlink_to("a.csv")
        assert refusal(root, "a.csv") == (InvalidArgument, "dataset.path 'a.csv' is a symlink loop")

    def test_a_file_the_daemon_may_not_look_at_is_permission_denied(
            self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """EACCES on the lookup (a folder without search permission; root never sees it)."""
        def denied(self: Path, **kwargs: object) -> bool:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "stat", denied)
        assert refusal(root, "iris.csv") == (
            PermissionDenied, "dataset.path 'iris.csv' is not readable by the daemon")

    def test_a_missing_file_is_not_found(self, root: Path) -> None:
        """The message names the data root: where the file should be."""
        assert refusal(root, "nope.csv") == (
            NotFound, f"dataset.path 'nope.csv' not found under the data root {root.resolve()}")

    def test_a_long_path_outside_the_root_is_quoted_short(self, root: Path) -> None:
        kind, message = refusal(root, "../" + "x" * 200)
        assert (kind, message) == (PermissionDenied, f"dataset.path {'../' + 'x' * 77!r}... "
                                   "(203 characters) leads outside the data root")


class TestReadColumns:
    def test_a_truncated_gzip_is_not_a_readable_csv(self, tmp_path: Path) -> None:
        """EOFError from gzip: once INTERNAL when the header itself is cut."""
        whole = gzip.compress(IRIS.encode())
        (tmp_path / "cut.csv.gz").write_bytes(whole[:12])
        with pytest.raises(InvalidArgument) as err:
            read_columns(tmp_path / "cut.csv.gz", "cut.csv.gz")
        assert err.value.message == (
            "dataset.path 'cut.csv.gz' is not a readable CSV file: Compressed file ended "
            "before the end-of-stream marker was reached")

    def test_a_corrupt_gzip_stream_is_not_a_readable_csv(self, tmp_path: Path) -> None:
        whole = bytearray(gzip.compress(IRIS.encode() * 50))
        whole[20:40] = b"\xff" * 20  # zlib.error: invalid block type, or similar
        (tmp_path / "bad.csv.gz").write_bytes(bytes(whole))
        with pytest.raises(InvalidArgument,
                           match=r"^dataset\.path 'bad\.csv\.gz' is not a readable CSV file: "):
            read_columns(tmp_path / "bad.csv.gz", "bad.csv.gz")


class TestBoundedRead:
    """The daemon reads at most SAMPLE_BYTES of a dataset: limits are named when passed."""

    def test_more_columns_than_the_limit(self, tmp_path: Path) -> None:
        header = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
        (tmp_path / "wide.csv").write_text(header + "\n")
        with pytest.raises(InvalidArgument) as err:
            read_columns(tmp_path / "wide.csv", "wide.csv")
        assert err.value.message == (f"dataset.path 'wide.csv' has {MAX_COLUMNS + 1} columns, "
                                     f"more than the {MAX_COLUMNS} Train accepts")

    def test_a_long_header_line_in_a_small_file(self, tmp_path: Path) -> None:
        """Read whole (under SAMPLE_BYTES), still refused past MAX_HEADER_BYTES."""
        (tmp_path / "long.csv").write_text("x" * (MAX_HEADER_BYTES + 1) + "\n1\n")
        with pytest.raises(InvalidArgument) as err:
            read_columns(tmp_path / "long.csv", "long.csv")
        assert err.value.message == (
            f"dataset.path 'long.csv' has a header line longer than {MAX_HEADER_BYTES} bytes, "
            "the most Train reads")

    def test_a_sample_stops_at_the_limit_after_a_whole_line(self, tmp_path: Path) -> None:
        (tmp_path / "big.csv").write_text("a,b\n" + "1,2\n" * 1000)
        sample = read_sample(tmp_path / "big.csv", "big.csv", limit=102)
        assert (sample.text, sample.complete) == ("a,b\n" + "1,2\n" * 24, False)

    def test_a_file_within_the_limit_is_complete(self, tmp_path: Path) -> None:
        (tmp_path / "small.csv").write_text("a,b\n1,2")
        sample = read_sample(tmp_path / "small.csv", "small.csv", limit=7)
        assert (sample.text, sample.complete) == ("a,b\n1,2", True)

    def test_a_fifo_swapped_in_after_resolving_is_refused_without_blocking(
            self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "late.csv")
        with pytest.raises(InvalidArgument) as err:
            read_sample(tmp_path / "late.csv", "late.csv")
        assert err.value.message == "dataset.path 'late.csv' is not a regular file"


class TestManyFiles:
    """Globs, JSON Lines and hive-style Parquet folders (datasets.resolve_files,
    multifile.py), for both engines."""

    def test_a_glob_lists_its_files_in_name_order(self, root: Path) -> None:
        from modeld_server.training.datasets import resolve_files

        (root / "data").mkdir()
        for name in ("2026-02.csv", "2026-01.csv.gz", "2025-12.csv"):
            (root / "data" / name).write_bytes(b"a\n1\n")
        found = resolve_files(root, "data/2026-*")
        assert [f.name for f in found.files] == ["2026-01.csv.gz", "2026-02.csv"]

    def test_an_empty_glob_names_the_pattern(self, root: Path) -> None:
        from modeld_server.training.datasets import resolve_files

        with pytest.raises(InvalidArgument) as err:
            resolve_files(root, "data/2026-*.csv")
        assert err.value.message == ("dataset.path 'data/2026-*.csv' matches no file under "
                                     "the data root")

    def test_a_glob_match_linked_outside_the_root_is_refused(self, root: Path,
                                                              tmp_path: Path) -> None:
        from modeld_server.training.datasets import resolve_files

        (tmp_path / "secret.csv").write_text(IRIS)
        (root / "z.csv").symlink_to(tmp_path / "secret.csv")
        with pytest.raises(PermissionDenied) as err:
            resolve_files(root, "*.csv")
        assert err.value.message == "dataset.path 'z.csv' leads outside the data root"

    @pytest.mark.parametrize("pattern", ["../*.csv", "**/*.csv"])
    def test_a_glob_that_could_leave_the_root_is_refused(self, root: Path,
                                                         pattern: str) -> None:
        from modeld_server.training.datasets import resolve_files

        with pytest.raises(InvalidArgument) as err:
            resolve_files(root, pattern)
        assert err.value.message == (f"dataset.path '{pattern}': a glob must be relative to "
                                     "the data root, without '..' or '**'")

    def test_a_glob_of_mixed_kinds_is_refused(self, root: Path) -> None:
        from modeld_server.training.datasets import resolve_files

        (root / "iris.jsonl").write_text('{"a": 1}\n')
        with pytest.raises(InvalidArgument) as err:
            resolve_files(root, "iris.*")
        assert err.value.message == ("dataset.path 'iris.*' matches files of different kinds: "
                                     "'iris.csv' and 'iris.jsonl'")

    def test_hive_folders_become_columns(self, root: Path) -> None:
        import pandas as pd

        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        for day, region in (("1", "eu"), ("2", "eu"), ("2", "us")):
            folder = root / "sales" / f"day={day}" / f"region={region}"
            folder.mkdir(parents=True)
            pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(folder / "part-0.parquet")
        (root / "sales" / "_SUCCESS").write_text("")
        found = resolve_files(root, "sales")
        assert found.keys == ["day", "region"]
        assert multifile.columns(found, "sales") == ["x", "day", "region"]
        frame, report = multifile.load_checked(found, "sales")
        assert frame["day"].tolist() == [1, 1, 2, 2, 2, 2]
        assert frame["region"].tolist() == ["eu", "eu", "eu", "eu", "us", "us"]
        assert report.rows_read == 6

    def test_a_folder_not_named_key_value_is_refused(self, root: Path) -> None:
        from modeld_server.training.datasets import resolve_files

        (root / "sales" / "old").mkdir(parents=True)
        with pytest.raises(InvalidArgument) as err:
            resolve_files(root, "sales")
        assert err.value.message == ("dataset.path 'sales' holds folder 'sales/old': a "
                                     "subfolder of a dataset must be named key=value (hive "
                                     "partitioning)")

    def test_csv_files_with_different_headers_are_refused_at_train(self, root: Path) -> None:
        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (root / "d").mkdir()
        (root / "d" / "a.csv").write_text("x,y\n1,2\n")
        with gzip.open(root / "d" / "b.csv.gz", "wt") as out:
            out.write("x,z\n1,2\n")
        with pytest.raises(InvalidArgument) as err:
            multifile.columns(resolve_files(root, "d/*.csv*"), "d/*.csv*")
        assert err.value.message == ("dataset.path 'd/*.csv*': 'b.csv.gz' has columns x, z; "
                                     "'a.csv' has x, y: every file of a dataset has the same "
                                     "columns")

    def test_parquet_files_with_different_types_are_refused_at_train(self, root: Path) -> None:
        import pandas as pd

        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (root / "p").mkdir()
        pd.DataFrame({"x": [1.0]}).to_parquet(root / "p" / "a.parquet")
        pd.DataFrame({"x": ["one"]}).to_parquet(root / "p" / "b.parquet")
        with pytest.raises(InvalidArgument) as err:
            multifile.columns(resolve_files(root, "p"), "p")
        assert err.value.message == ("dataset.path 'p': column 'x' is large_string in 'b.parquet' "
                                     "but double in 'a.parquet': every file of a dataset has "
                                     "the same columns and types")

    def test_malformed_records_are_named_by_file_and_line(self, root: Path) -> None:
        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (root / "j").mkdir()
        (root / "j" / "a.jsonl").write_text('{"x": 1, "y": "a"}\n\n{"x": 2\n[1]\n')
        with gzip.open(root / "j" / "b.jsonl.gz", "wt") as out:
            out.write('{"y": "b", "x": 3}\nnot json\n{"x": 4, "y": "c", "z": {"k": 1}}\n')
        (root / "c").mkdir()
        (root / "c" / "a.csv").write_text("x,y\n1,2\n3\n")
        (root / "c" / "b.csv").write_text("x,y\n4,5\n6,7,8\n")
        frame, report = multifile.load_checked(resolve_files(root, "j/*"), "j/*")
        assert frame["x"].tolist() == [1, 3, 4] and report.rows_read == 6
        assert frame["z"].tolist()[2] == '{"k": 1}'
        assert report.malformed["count"] == 3
        assert report.malformed["first_lines"] == ["a.jsonl:3", "a.jsonl:4", "b.jsonl.gz:2"]
        assert report.lines.tolist() == ["a.jsonl:1", "b.jsonl.gz:1", "b.jsonl.gz:3"]
        frame, report = multifile.load_checked(resolve_files(root, "c/*.csv"), "c/*.csv")
        assert frame["x"].tolist() == [1, 4]
        assert report.malformed["first_lines"] == ["a.csv:3", "b.csv:3"]

    def test_a_jsonl_file_has_its_columns_read_from_a_bounded_sample(self, root: Path) -> None:
        (root / "r.jsonl").write_text('{"a": 1}\n{"b": true, "a": 2}\n')
        assert read_columns(root / "r.jsonl", "r.jsonl") == ["a", "b"]
