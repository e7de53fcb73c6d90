"""`make run`'s command line (dry run): the environment and LISTEN choose the address."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(*args: str, **env: str) -> list[str]:
    # Run from `make test`, the parent make's variables would make this one print
    # "Entering directory" lines: a clean environment, as a shell has.
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MODELD_") and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(["make", "-n", "run", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={**base, **env}, check=True).stdout
    return out.splitlines()[-3:]


def test_by_default_the_daemon_picks_its_own_address() -> None:
    """No --listen on the command line, so MODELD_LISTEN (or the default) decides."""
    assert _dry_run() == [
        "mkdir -p var/data",
        "cp -n data/spambase.csv data/spambase.README.md var/data/",
        ".venv/bin/modeld serve ",
    ]


def test_listen_and_the_data_root_variable_are_honoured() -> None:
    lines = _dry_run("LISTEN=127.0.0.1:50052", MODELD_DATA_ROOT="/srv/data")
    assert lines == [
        "mkdir -p /srv/data",
        "cp -n data/spambase.csv data/spambase.README.md /srv/data/",
        ".venv/bin/modeld serve --listen 127.0.0.1:50052",
    ]
