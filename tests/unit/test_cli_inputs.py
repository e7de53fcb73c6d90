"""What modelctl reads: --param pairs, Predict rows (CSV, JSON, JSON Lines), global options."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from modeld._cli.inputs import InputError, parse_params, read_rows
from modeld._cli.session import hoist_global_options


class TestParseParams:
    def test_values_pass_through_as_strings(self) -> None:
        """The daemon parses JSON literals; the CLI passes the text untouched."""
        assert parse_params(["max_depth=6", "criterion=gini", "expr=a=b"]) == {
            "max_depth": "6", "criterion": "gini", "expr": "a=b"}

    def test_missing_equals_is_refused(self) -> None:
        """A pair without '=' is an InputError quoting it."""
        with pytest.raises(InputError, match="'max_depth' is not name=value"):
            parse_params(["max_depth"])

    def test_repeated_name_is_refused(self) -> None:
        """Giving one parameter twice is a mistake, not a silent override."""
        with pytest.raises(InputError, match="'eta' is given twice"):
            parse_params(["eta=0.1", "eta=0.2"])


class TestReadRows:
    def test_csv_cells_become_numbers_or_none(self, tmp_path: Path) -> None:
        """CSV cells that spell numbers become numbers; empty cells become None."""
        path = tmp_path / "rows.csv"
        path.write_text("a,b,c\n1,2.5,red\n,-3,\n")
        rows = read_rows(str(path), "auto", io.StringIO()).typed()
        assert rows == [{"a": 1, "b": 2.5, "c": "red"}, {"a": None, "b": -3, "c": None}]

    def test_text_columns_and_dropped_columns(self, tmp_path: Path) -> None:
        """Categorical columns stay text; the target column is dropped."""
        path = tmp_path / "rows.csv"
        path.write_text("zip,y\n01,1\n")
        rows = read_rows(str(path), "csv", io.StringIO()).typed(text_columns={"zip"}, drop={"y"})
        assert rows == [{"zip": "01"}]

    def test_json_array_object_and_lines(self, tmp_path: Path) -> None:
        """JSON input may be an array, {"rows": [...]}, one object, or JSON Lines."""
        stdin = io.StringIO('[{"a": 1}, {"a": 2}]')
        assert read_rows("-", "auto", stdin).typed() == [{"a": 1}, {"a": 2}]
        assert read_rows("-", "json", io.StringIO('{"rows": [{"a": 1}]}')).typed() == [{"a": 1}]
        assert read_rows("-", "json", io.StringIO('{"a": 1}')).typed() == [{"a": 1}]
        path = tmp_path / "rows.jsonl"
        path.write_text('{"a": 1}\n{"a": "x"}\n')
        assert read_rows(str(path), "auto", io.StringIO()).typed() == [{"a": 1}, {"a": "x"}]

    def test_json_values_are_not_reinterpreted(self) -> None:
        """A JSON string stays a string even when it spells a number."""
        assert read_rows("-", "json", io.StringIO('[{"a": "01"}]')).typed() == [{"a": "01"}]

    def test_stdin_csv_is_sniffed(self) -> None:
        """stdin that does not start with [ or { is read as CSV."""
        assert read_rows("-", "auto", io.StringIO("a\n1\n")).typed() == [{"a": 1}]

    @pytest.mark.parametrize(("text", "message"), [
        ("", "no rows in stdin"),
        ("a,b\n", "no rows in stdin"),
        ("a\n1,2\n", "CSV line 2 has more cells than the header"),
        ("[1, 2]", "JSON rows must be objects"),
        ("{not json", "not valid JSON or JSON Lines"),
    ])
    def test_bad_input_is_an_input_error(self, text: str, message: str) -> None:
        """Empty or malformed input fails with a message saying what is wrong."""
        fmt = "json" if text.startswith(("[", "{")) else "csv"
        with pytest.raises(InputError, match=message):
            read_rows("-", fmt, io.StringIO(text))

    def test_missing_file_is_an_input_error(self, tmp_path: Path) -> None:
        """A file that cannot be read names itself."""
        with pytest.raises(InputError, match=f"cannot read {tmp_path}/nope.csv"):
            read_rows(str(tmp_path / "nope.csv"), "auto", io.StringIO())


class TestHoistGlobalOptions:
    def test_global_options_after_the_subcommand_move_first(self) -> None:
        """Flags and valued global options written after the subcommand go before it."""
        assert hoist_global_options(["status", "spam", "--json", "--address", "h:1", "-q"]) == [
            "--json", "--address", "h:1", "-q", "status", "spam"]

    def test_equals_form_is_moved_whole(self) -> None:
        """--timeout=5 moves as one word."""
        assert hoist_global_options(["versions", "spam", "--timeout=5"]) == [
            "--timeout=5", "versions", "spam"]

    def test_command_options_stay(self) -> None:
        """Options of the subcommand are left where they are, in order."""
        args = ["train", "spam", "--data", "d.csv", "--param", "a=1", "--follow"]
        assert hoist_global_options(args) == args

    def test_words_after_double_dash_are_left_alone(self) -> None:
        """After --, nothing is an option."""
        assert hoist_global_options(["predict", "--", "--json"]) == ["predict", "--", "--json"]
