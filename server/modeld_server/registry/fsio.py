"""Small durable file primitives: atomic replace, fsync of folders, checksums, file locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from modeld_server.errors import from_os_error

T = TypeVar("T")

_CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    """Makes a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flushes a file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replaces `path` with `data` so readers see the old or the new file, never a part.

    The temporary file lives in the same folder (so os.replace is a rename on one
    filesystem) and is fsynced before the rename; the folder is fsynced after.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        # Whatever failed (a write, the fsync, the rename, an interrupt), no temp stays;
        # a failing cleanup must not hide the error that caused it.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise named(exc, path) from exc
        raise
    fsync_dir(path.parent)


def append_line(path: Path, line: bytes) -> None:
    """Appends one line in a single write with O_APPEND, then fsyncs it.

    If the file does not end with a newline (a crash tore the last append), the line
    goes after one, so it is not glued onto the fragment and lost with it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        # Exclusive while checking the last byte and writing: a concurrent append that
        # spans a page can show a size that ends mid-line, which would look torn.
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        _write_all(fd, line)
        os.fsync(fd)
    except OSError as exc:
        if exc.filename is None:
            raise named(exc, path) from exc
        raise
    finally:
        os.close(fd)


def named(exc: OSError, path: Path) -> OSError:
    """A copy of `exc` naming `path`, for calls that name no file (os.write and os.fsync
    on a full disk), so errors.from_os_error can say where."""
    return OSError(exc.errno, exc.strerror, str(path))


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written: one call may write fewer (a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class StatCache(Generic[T]):
    """Small files parsed once per change: a stat per read instead of open + read + parse.

    GetStatus reads a pointer and a few documents per model on every call; a stat costs a
    tenth of opening and reading. Every writer replaces these files (write_atomic: a new
    inode), and the stamp also holds size, mtime and ctime. A file modified in the last
    two seconds is never taken from memory, as git does for its index, so a rewrite within
    the file system's timestamp granularity cannot hide.
    """

    RACY_SECONDS = 2.0

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, ...], T]] = {}

    def get(self, path: Path, parse: Callable[[], T]) -> T:
        """parse()'s value for `path` as it is now; parse() runs when the file changed.

        A missing file is parse()'s to handle (it raises or answers, and nothing is kept);
        so is a value parse() raises for, which is never remembered.
        """
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._entries.pop(path, None)
            return parse()
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._entries.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        value = parse()
        if time.time() - st.st_mtime > self.RACY_SECONDS:
            self._entries[path] = (stamp, value)
        return value


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive OS lock (flock) on `path` for the block; blocks until it is free.

    flock locks belong to the open file, so two processes (or two threads with
    their own open) exclude each other, and a crashed holder releases it.

    Every registry write happens under this lock, so the disk's refusals are told apart
    here, once: a full disk raises ResourceExhausted and a read-only one (or a folder
    without permission, or immutable) FailedPrecondition, each naming the file, rather
    than an OSError that would reach a client as INTERNAL.
    """
    with _disk_errors():
        fd = _lock(path, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    """Turns a disk's refusal (full, read-only, not permitted) into its domain error."""
    try:
        yield
    except OSError as exc:
        known = from_os_error(exc)
        if known is None:
            raise
        raise known from None


def try_lock(path: Path) -> int | None:
    """Takes an exclusive lock without waiting; returns the fd holding it, or None if taken."""
    try:
        return _lock(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None


def shared_lock(path: Path) -> int:
    """Takes a shared lock on `path` (creating it), waiting if need be; returns its fd.

    A staging folder's builders (the daemon, and the worker process that fills it) share
    its lock; a sweep's exclusive try_lock fails while any of them lives.
    """
    return _lock(path, fcntl.LOCK_SH)


def hold_builder_lock(path: Path) -> int | None:
    """Joins the builders of a staging folder: a shared lock on its existing lock file.

    Returns None when the lock file is gone or a sweep holds it (the folder was judged
    dead): the caller must not write there. The fd is kept open for the caller's life,
    and processes forked from it share the lock.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not _names(path, fd):  # swept between our open and our flock
        os.close(fd)
        return None
    return fd


def _lock(path: Path, operation: int) -> int:
    """Opens (creating) `path` and flocks it; returns the fd holding the lock.

    A sweep may unlink the lock file between our open and our flock: we would then
    hold a lock on an inode no one else can see, and the next sweep would take the
    path as free. So once locked, check the path still names our file, else retry.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, operation)
            if _names(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the open file `fd` (it was not unlinked or replaced)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False
