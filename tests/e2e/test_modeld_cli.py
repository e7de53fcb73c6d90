"""The `modeld` command as a first user meets it: --version, --help, a busy port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from modeld_server.__main__ import missing_server_requirements

SCRIPT = Path(sys.executable).with_name("modeld")


def _modeld(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin"})


def test_version(tmp_path: Path) -> None:
    result = _modeld("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "modeld 0.1.0\n")


def test_help_lists_serve(tmp_path: Path) -> None:
    result = _modeld("--help", cwd=tmp_path)
    assert result.returncode == 0 and "serve        run the daemon" in result.stdout


def test_a_port_in_use_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    """No traceback: the address, and how to pick another."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _modeld("serve", "--listen", f"127.0.0.1:{port}", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"modeld: 127.0.0.1:{port} is in use; pass --listen HOST:PORT "
                             "or set MODELD_LISTEN\n")


def test_a_busy_http_port_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    """--http-listen on a port in use: named with its own flag; the daemon stops (the gRPC
    port it had bound is let go) and exits 2."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _modeld("serve", "--listen", "127.0.0.1:0", "--http-listen",
                         f"127.0.0.1:{port}", "--no-training", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[0] == (
        f"modeld: 127.0.0.1:{port} is in use; pass --http-listen HOST:PORT or set "
        "MODELD_HTTP_LISTEN")
    assert [json.loads(line)["event"] for line in result.stderr.splitlines()[1:]][-1] == \
        "stopped"


def test_an_http_port_out_of_range_is_refused(tmp_path: Path) -> None:
    result = _modeld("serve", "--http-listen", "127.0.0.1:70000", cwd=tmp_path)
    assert result.returncode == 2
    assert "--http-listen: port 70000 is out of range 0-65535 in '127.0.0.1:70000'" in \
        result.stderr


def test_the_server_part_is_installed_here() -> None:
    """The project's venv has the `server` extra (the client-only case: test_install.py)."""
    assert missing_server_requirements() == []


def test_a_daemon_run_logs_json_only_and_the_loopback_warning_once(tmp_path: Path) -> None:
    """Start to `serving` to SIGTERM: every stderr line is JSON; the narrowing is said once."""
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--listen", "0.0.0.0:0", "--log-format", "json"],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
    assert process.stderr is not None
    lines: list[str] = []
    try:
        for line in process.stderr:  # ends at EOF if the daemon dies; the timeout bounds it
            lines.append(line)
            if '"event": "serving"' in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=120)
    lines.extend(rest.splitlines(keepends=True))
    events = [json.loads(line)["event"] for line in lines]
    assert process.returncode == 0, lines
    assert "serving" in events and events[-1] == "stopped"
    assert events.count("listening_on_loopback_only") == 1
