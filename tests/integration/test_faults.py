"""Truth under faults: what the daemon does when it is killed, stopped, or given bad files.

Each class starts real daemons as subprocesses (`python -m modeld_server serve`), the way an
operator runs them, and observes them from outside: exit codes, stderr, /proc, gRPC status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modeld_server.auth import TokenFileError, TokenTable

SERVE = [sys.executable, "-m", "modeld_server", "serve", "--listen", "127.0.0.1:0"]


def serve_args(base: Path, *extra: str) -> list[str]:
    """The command line of a daemon with its folders under `base`."""
    return [*SERVE, "--registry", str(base / "registry"), "--data-root", str(base / "data"),
            "--state-dir", str(base / "state"), *extra]


class TestTokenFile:
    """A `#` inside a token is part of it; a bad file stops the daemon with one line, exit 2."""

    GOOD = "operator-token-0123456789"

    def load(self, tmp_path: Path, text: str | bytes) -> TokenTable:
        path = tmp_path / "tokens"
        if isinstance(text, str):
            text = text.encode()
        path.write_bytes(text)
        return TokenTable.load(path)

    def test_a_hash_inside_a_token_is_part_of_it(self, tmp_path: Path) -> None:
        """`operator abcd#efgh...` is the whole word; the part before `#` is no token."""
        table = self.load(tmp_path, "operator shortpart#0123456789abcdef\n")
        assert table.role_of("shortpart#0123456789abcdef") == "operator"
        assert table.role_of("shortpart") is None

    def test_a_hash_that_would_leave_a_short_secret_is_refused(self, tmp_path: Path) -> None:
        """Before, `operator abc#...` silently set the secret `abc`; now the token is whole."""
        table = self.load(tmp_path, "operator abc#defghijklmnopqrstu\n")
        assert table.role_of("abc") is None
        assert table.role_of("abc#defghijklmnopqrstu") == "operator"

    def test_comments_start_a_line_or_follow_whitespace(self, tmp_path: Path) -> None:
        """`#` at a line's start, or after a space or a tab, starts a comment."""
        table = self.load(tmp_path, f"# role token\n  # indented\noperator {self.GOOD} # mine\n"
                                    f"reader reader-token-0123456789\t#tabbed\r\n")
        assert table.role_of(self.GOOD) == "operator"
        assert table.role_of("reader-token-0123456789") == "reader"

    @pytest.mark.parametrize(("text", "message"), [
        ("operator short#x\n", "tokens:1: token shorter than 16 characters (7)"),
        ("admin operator-token-0123456789\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got unknown role 'admin'"),
        ("operator-token-0123456789\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got 1 word"),
        ("operator operator-token-0123456789 extra\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got 3 words"),
        ("operator operator-token\x0b0123456789\n",
         "tokens:1: character 0x0b is not allowed; roles and tokens are printable ASCII, "
         "separated by spaces or tabs"),
        (f"operator {GOOD}\nreader {GOOD}\n", "tokens:2: the same token as line 1"),
        ("# nothing but comments\n", "tokens: no tokens"),
    ])
    def test_bad_lines_name_line_and_reason(self, tmp_path: Path, text: str,
                                            message: str) -> None:
        """Every refusal names the file, the line and the reason, and never the token."""
        with pytest.raises(TokenFileError) as err:
            self.load(tmp_path, text)
        assert str(err.value) == f"{tmp_path}/{message}"

    @pytest.mark.parametrize("case", ["missing", "empty", "unknown role", "unreadable",
                                      "garbage bytes"])
    def test_a_bad_file_stops_the_daemon_with_one_line(self, tmp_path: Path, case: str) -> None:
        """No traceback: exit code 2 and one line on stderr that names the file."""
        path = tmp_path / "tokens"
        expected = {
            "missing": f"{path}: cannot read the token file: No such file or directory",
            "empty": f"{path}: no tokens",
            "unknown role": f"{path}:1: expected 'reader TOKEN' or 'operator TOKEN', got "
                            "unknown role 'root'",
            "unreadable": f"{path}: cannot read the token file: Is a directory",
            "garbage bytes": f"{path}:2: byte 0xff is not ASCII; roles and tokens are "
                             "printable ASCII",
        }[case]
        if case == "empty":
            path.write_text("")
        elif case == "unknown role":
            path.write_text(f"root {self.GOOD}\n")
        elif case == "unreadable":
            path.mkdir()
        elif case == "garbage bytes":
            path.write_bytes(f"operator {self.GOOD}\n".encode() + b"\xff\xfe\x00garbage\n")
        result = subprocess.run(serve_args(tmp_path, "--token-file", str(path)),
                                capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr.splitlines()) == (2, [f"modeld: {expected}"])
