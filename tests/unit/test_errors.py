"""Error messages quote what the caller sent, never more than about 80 characters of it."""

from __future__ import annotations

import errno
import os

import pytest

from modeld_server.errors import (
    SHOWN_CHARS,
    FailedPrecondition,
    ModeldError,
    ResourceExhausted,
    clip,
    from_os_error,
    quoted,
)


class TestQuoted:
    def test_a_short_value_reads_as_its_repr(self) -> None:
        """Messages of ordinary inputs are unchanged: quoted(x) is {x!r}."""
        for value in ("iris", "", "a'b", "\x00", "模型", 3, None, [1, 2]):
            assert quoted(value) == repr(value)

    def test_a_long_string_is_cut_with_the_marker_outside_the_quotes(self) -> None:
        """20k characters become 80 of them, then '...' and the full length."""
        assert quoted("j" * 20_000) == f"{'j' * SHOWN_CHARS!r}... (20000 characters)"

    def test_the_cut_is_made_before_quoting(self) -> None:
        """Escapes stay whole: a NUL is never split into a broken '\\x0'."""
        assert quoted("\x00" * 100, 3) == "'\\x00\\x00\\x00'... (100 characters)"

    def test_a_long_value_of_another_type_has_its_repr_cut(self) -> None:
        assert quoted(list(range(1000)), 10) == "[0, 1, 2, ..."

    def test_the_limit_is_exact(self) -> None:
        assert quoted("x" * 80) == repr("x" * 80)
        assert quoted("x" * 81).endswith("... (81 characters)")


class TestClip:
    def test_short_text_is_unchanged(self) -> None:
        assert clip("C") == "C"

    def test_long_text_is_cut_with_its_length(self) -> None:
        assert clip("p" * 100, 5) == "ppppp... (100 characters)"


class TestFromOsError:
    """One errno mapping for every RPC and job: what the disk causes is never INTERNAL."""

    @pytest.mark.parametrize(("number", "kind", "message"), [
        (errno.ENOSPC, ResourceExhausted, "no space left on device writing '/r/m/ACTIVE'"),
        (errno.EDQUOT, ResourceExhausted, "disk quota exceeded writing '/r/m/ACTIVE'"),
        (errno.EROFS, FailedPrecondition, "read-only file system: cannot write '/r/m/ACTIVE'"),
        (errno.EACCES, FailedPrecondition,
         "permission denied: the daemon may not write '/r/m/ACTIVE'"),
        (errno.EPERM, FailedPrecondition,
         "operation not permitted: the daemon may not write '/r/m/ACTIVE'"),
    ])
    def test_each_errno(self, number: int, kind: type[ModeldError], message: str) -> None:
        mapped = from_os_error(OSError(number, os.strerror(number), "/r/m/ACTIVE"))
        assert type(mapped) is kind and mapped.message == message

    def test_other_errors_stay_unmapped(self) -> None:
        """EIO and kin are not the caller's or the operator's doing: INTERNAL, logged."""
        assert from_os_error(OSError(errno.EIO, "I/O error", "/r")) is None

    def test_an_unnamed_error_says_a_file(self) -> None:
        mapped = from_os_error(OSError(errno.ENOSPC, "No space left on device"))
        assert mapped is not None and mapped.message == "no space left on device writing a file"
