"""Real faults for tests: a small tmpfs, an immutable folder, a read-only bind mount.

They need root; where they cannot be set up the test skips, saying why. Every fault is
undone when its block ends, whatever the test met.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEADLINE = 120.0  # seconds; generous, for a machine under load


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` mounted on `path` for the block (skips when it cannot be)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a file the daemon still holds open must not leave the mount behind.
        run("umount", "-l", str(path))


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i` on `path` for the block: nothing in it may be created, renamed or removed."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    done = run("chattr", "+i", str(path))
    if done.returncode:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield
    finally:
        run("chattr", "-i", str(path))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` bind-mounted read-only onto itself for the block."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    if run("mount", "--bind", str(path), str(path)).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        remounted = run("mount", "-o", "remount,ro,bind", str(path))
        if remounted.returncode:
            pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
        yield
    finally:
        run("umount", "-l", str(path))


def fill(folder: Path) -> Path:
    """Writes a file into `folder` until its file system is full; returns it."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def poll(what: Callable[[], object], until: Callable[[object], bool],
         deadline: float = DEADLINE) -> object:
    """`what()` again and again until `until` holds of it, or fails with the last value."""
    end = time.monotonic() + deadline
    while True:
        value = what()
        if until(value):
            return value
        assert time.monotonic() < end, f"still {value!r} after {deadline:g}s"
        time.sleep(0.05)
