"""`modeld serve [flags]`: run the daemon until SIGTERM or SIGINT.

This module imports only the standard library and `config` until the command line is read, so
`modeld --version`, `modeld serve --help` and the "install the server part" line work in a
client-only install (`pip install modeld`, without the `server` extra).
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from types import FrameType

from modeld_server.config import Settings, load_settings

USAGE = """usage: modeld [--version] [--help] serve [flags]

commands:
  serve        run the daemon (`modeld serve --help` lists its flags)

options:
  --version    print the version and exit
  -h, --help   show this help and exit"""

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        return 0 if args else EXIT_USAGE
    if args[0] == "--version":
        print(f"modeld {_version()}")
        return 0
    if args[0] != "serve":
        print(f"modeld: unknown command {args[0]!r}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(args[1:])
    missing = missing_server_requirements()
    if missing:
        print(f"modeld serve needs the server part (missing: {', '.join(missing)}): "
              "pip install 'modeld[server]'", file=sys.stderr)
        return EXIT_USAGE
    return _serve(settings)


def _serve(settings: Settings) -> int:
    from modeld_server import logging as modeld_logging

    modeld_logging.configure(settings.log_format, settings.log_level, settings.fast_paths)
    from modeld_server.auth import TokenFileError
    from modeld_server.compose import build_daemon
    from modeld_server.rpc.server import ListenError

    try:
        daemon = build_daemon(settings)
    except (TokenFileError, ListenError) as exc:  # the operator's doing: one line, exit 2
        print(f"modeld: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stopping = StopSignals()
    try:
        daemon.start()
    except ListenError as exc:  # --http-listen or --metrics-listen
        print(f"modeld: {exc}", file=sys.stderr)
        daemon.stop(grace=0)
        return EXIT_USAGE
    # The index and the loaded models live as long as the process: out of the collector's
    # sight, a full collection no longer walks them (0.5 s with 10,000 versions).
    gc.freeze()
    stopping.wait()
    daemon.stop()
    return 0


class StopSignals:
    """SIGTERM (and SIGINT, unless the daemon was started with it ignored) ends `wait()`.

    Linux hands a signal sent to the process to any of its threads, most often the main one
    but not always (grpc's, the RPC pool's). A Python handler only runs in the main thread,
    and a main thread blocked in `Event.wait()` is not woken when the signal lands on another
    thread: the daemon then ignored SIGTERM (seen once in CI: health stayed SERVING for the
    60 s the test waited). The C-level handler also writes the signal's number to the wakeup
    fd whichever thread it runs in, so the main thread blocks reading that pipe instead.
    """

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        # Started with SIGINT ignored (a shell's background job, `nohup` in a script), the
        # daemon keeps it so: Ctrl-C at that terminal was not meant for it.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self._on_signal)

    @staticmethod
    def _on_signal(signum: int, frame: FrameType | None) -> None:
        """Nothing to do here: the byte in the wakeup pipe is what `wait()` acts on."""

    def wait(self) -> None:
        """Blocks until SIGTERM or SIGINT reaches the process, through any of its threads."""
        # The C handler writes the number of any signal with a Python handler: only ours
        # end the wait, whatever a library may install later. Returns at once if the
        # signal came first.
        while os.read(self._read, 1)[0] not in (signal.SIGTERM, signal.SIGINT):
            pass


def _version() -> str:
    try:
        return metadata.version("modeld")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def missing_server_requirements() -> list[str]:
    """The distributions of the `server` extra that are not installed, as pip names them.

    Read from the installed metadata, so the list cannot drift from pyproject.toml; empty
    when modeld itself is not installed (a source tree on sys.path: nothing to compare with).
    """
    try:
        requirements = metadata.requires("modeld") or []
    except metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requirements:
        name, _, marker = requirement.partition(";")
        if not re.search(r"""extra\s*==\s*["']server["']""", marker):
            continue
        match = re.match(r"[A-Za-z0-9._-]+", name.strip())
        if match is None:
            continue
        try:
            metadata.distribution(match.group())
        except metadata.PackageNotFoundError:
            missing.append(match.group())
    return missing


if __name__ == "__main__":
    sys.exit(main())
