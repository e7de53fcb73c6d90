"""registry/layout.py: model names cannot leave the registry; version folders parse strictly."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeld_server.errors import InvalidArgument
from modeld_server.registry.layout import (
    MODEL_NAME_PATTERN,
    ModelPaths,
    is_model_name,
    model_paths,
    parse_version_dir,
    validate_model_name,
)

ROOT = Path("/registry")

# Characters that matter for path escapes, mixed with ordinary ones so that
# hypothesis often builds names that pass validation.
_PATHY = st.sampled_from(["/", ".", "..", "\x00", "\\", "-", "_", " ", "\n", "~"])
_NAME_TEXT = st.lists(
    st.one_of(st.sampled_from(list(string.ascii_letters + string.digits)), _PATHY,
              st.characters()),
    max_size=70,
).map("".join)


def _is_direct_child(name: str) -> bool:
    """True when ROOT / name, normalised, is a folder directly inside ROOT."""
    resolved = Path(os.path.normpath(ROOT / name))
    return resolved.parent == ROOT and resolved.name == name


class TestValidateModelName:
    @pytest.mark.parametrize("name", [
        "m", "0", "spam", "Spam-Filter_v2.1", "a..b", "a.", "9lives", "x" * 64,
    ])
    def test_accepts_names_from_the_documented_alphabet(self, name: str) -> None:
        """1-64 characters of [A-Za-z0-9._-] starting with a letter or digit are accepted."""
        assert validate_model_name(name) == name

    @pytest.mark.parametrize("name", [
        ".", "..", ".hidden", "-flag", "_x", "a/b", "/abs", "a\\b", "a b", "a\x00b",
        "a\n", "\nb", "é", "m\u0131", "x" * 65,
    ])
    def test_rejects_anything_else(self, name: str) -> None:
        """Separators, dot names, a leading '-' or '_', non-ASCII and 65 characters are refused."""
        with pytest.raises(InvalidArgument) as info:
            validate_model_name(name)
        assert info.value.message == (
            f"model {name!r} is not a valid model name: use 1-64 characters from "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )

    def test_empty_name_is_required(self) -> None:
        """An empty name is reported as missing, under the caller's field name."""
        with pytest.raises(InvalidArgument, match=r"^to_model is required$"):
            validate_model_name("", field="to_model")

    def test_long_rejected_names_are_truncated_in_the_message(self) -> None:
        """A huge rejected name is shown as its first 80 characters and '...'."""
        with pytest.raises(InvalidArgument) as info:
            validate_model_name("y" * 5000)
        assert repr("y" * 80 + "...") in info.value.message
        assert "y" * 81 not in info.value.message

    @given(st.from_regex(MODEL_NAME_PATTERN, fullmatch=True))
    def test_every_name_of_the_pattern_is_accepted(self, name: str) -> None:
        """The documented pattern and the validator agree."""
        assert validate_model_name(name) == name

    @given(_NAME_TEXT)
    def test_an_accepted_name_is_a_direct_child_of_the_root(self, name: str) -> None:
        """Whatever passes validation names a folder directly inside the registry root."""
        try:
            validate_model_name(name)
        except InvalidArgument:
            return
        assert name not in (".", "..")
        assert "/" not in name and "\x00" not in name
        assert _is_direct_child(name)
        assert model_paths(ROOT, name).root.parent == ROOT


class TestIsModelName:
    @given(_NAME_TEXT)
    def test_agrees_with_the_validator(self, name: str) -> None:
        """is_model_name is True exactly for the names validate_model_name accepts."""
        try:
            validate_model_name(name)
        except InvalidArgument:
            assert not is_model_name(name)
        else:
            assert is_model_name(name)


class TestParseVersionDir:
    @pytest.mark.parametrize(("name", "number"),
                             [("1", 1), ("9", 9), ("10", 10), ("123456", 123456)])
    def test_positive_decimal_names_are_versions(self, name: str, number: int) -> None:
        """A folder named by a positive number without leading zeros is that version."""
        assert parse_version_dir(name) == number

    @pytest.mark.parametrize("name", ["", "0", "00", "01", "-1", "+1", "1.0", "1a", " 1", "v1",
                                      ".staging", "manifest.json"])
    def test_anything_else_is_not_a_version(self, name: str) -> None:
        """Zero, leading zeros, signs, spaces and other names are ignored."""
        assert parse_version_dir(name) is None

    @given(st.text(alphabet=string.printable, max_size=12))
    def test_a_parsed_number_round_trips_to_the_folder_name(self, name: str) -> None:
        """For ASCII names, a parsed version is exactly the folder name it came from."""
        number = parse_version_dir(name)
        assert number is None or (number > 0 and str(number) == name)

    @pytest.mark.parametrize("name", ["\u00b2", "\u0661", "1\u0662"])
    def test_non_ascii_digits_are_not_versions(self, name: str) -> None:
        """A folder named with non-ASCII digits (superscript two, Arabic-Indic one) is not one."""
        assert parse_version_dir(name) is None


class TestModelPaths:
    def test_paths_follow_the_documented_layout(self) -> None:
        """Every path of a model sits where the module docstring says."""
        paths = model_paths(ROOT, "spam")
        assert paths == ModelPaths(ROOT / "spam")
        assert paths.versions == ROOT / "spam" / "versions"
        assert paths.version(3) == ROOT / "spam" / "versions" / "3"
        assert paths.manifest(3) == ROOT / "spam" / "versions" / "3" / "manifest.json"
        assert paths.active == ROOT / "spam" / "ACTIVE"
        assert paths.events == ROOT / "spam" / "events.jsonl"
        assert paths.lock == ROOT / "spam" / ".lock"
        assert paths.staging == ROOT / "spam" / ".staging"
