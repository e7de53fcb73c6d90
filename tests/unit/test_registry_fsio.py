"""registry/fsio.py: atomic replace, appends, checksums and OS file locks."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from modeld_server.errors import ResourceExhausted
from modeld_server.registry import fsio
from tests.unit._registry_helpers import skip_disk_flush

FLIPS = 500


def _fail(*_args: object) -> None:
    raise OSError(28, "No space left on device")


class TestWriteAtomic:
    def test_creates_then_replaces_the_file(self, tmp_path: Path) -> None:
        """The first call creates the file; the next one replaces its whole content."""
        target = tmp_path / "ACTIVE"
        fsio.write_atomic(target, b"12\n")
        assert target.read_bytes() == b"12\n"
        fsio.write_atomic(target, b"3\n")
        assert target.read_bytes() == b"3\n"

    def test_leaves_no_temporary_file_behind(self, tmp_path: Path) -> None:
        """After any number of replaces the folder holds just the target."""
        for n in range(20):
            fsio.write_atomic(tmp_path / "ACTIVE", f"{n}\n".encode())
        assert os.listdir(tmp_path) == ["ACTIVE"]

    def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the final os.replace fails, readers still see the old content and no temp remains."""
        target = tmp_path / "ACTIVE"
        fsio.write_atomic(target, b"1\n")
        monkeypatch.setattr("modeld_server.registry.fsio.os.replace", _fail)
        with pytest.raises(OSError, match="No space left"):
            fsio.write_atomic(target, b"2\n")
        assert target.read_bytes() == b"1\n"
        assert os.listdir(tmp_path) == ["ACTIVE"]

    def test_a_failed_fsync_keeps_the_old_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If flushing the new content fails, the target is untouched."""
        target = tmp_path / "ACTIVE"
        fsio.write_atomic(target, b"1\n")
        monkeypatch.setattr("modeld_server.registry.fsio.os.fsync", _fail)
        with pytest.raises(OSError, match="No space left"):
            fsio.write_atomic(target, b"2\n")
        assert target.read_bytes() == b"1\n"

    def test_a_failed_fsync_leaves_no_temporary_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If flushing the new content fails, the temporary file is removed too."""
        target = tmp_path / "ACTIVE"
        fsio.write_atomic(target, b"1\n")
        monkeypatch.setattr("modeld_server.registry.fsio.os.fsync", _fail)
        with pytest.raises(OSError):
            fsio.write_atomic(target, b"2\n")
        assert os.listdir(tmp_path) == ["ACTIVE"]

    @pytest.mark.parametrize("step", ["write", "fsync", "close"])
    def test_an_interrupt_at_any_step_leaves_no_temporary_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        """A KeyboardInterrupt (a BaseException) in write, fsync or close removes the temp too."""
        target = tmp_path / "ACTIVE"
        fsio.write_atomic(target, b"1\n")
        real = getattr(os, step)

        def interrupt(*args: object) -> None:
            real(*args)
            raise KeyboardInterrupt

        monkeypatch.setattr(f"modeld_server.registry.fsio.os.{step}", interrupt)
        with pytest.raises(KeyboardInterrupt):
            fsio.write_atomic(target, b"2\n")
        monkeypatch.undo()
        assert target.read_bytes() == b"1\n"
        assert os.listdir(tmp_path) == ["ACTIVE"]

    def test_readers_never_see_a_partial_or_missing_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A reader polling the pointer while it flips 500 times sees only whole numbers."""
        skip_disk_flush(monkeypatch)
        target = tmp_path / "ACTIVE"
        # Contents of different lengths, so a torn read would show up as a wrong value.
        values = [b"7\n", b"123456789\n"]
        fsio.write_atomic(target, values[0])
        done = threading.Event()
        seen: set[bytes] = set()
        reads = 0

        def reader() -> None:
            nonlocal reads
            while not done.is_set():
                seen.add(target.read_bytes())
                reads += 1
                time.sleep(0)  # hand the GIL back so the writer is not starved

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for n in range(FLIPS):
                fsio.write_atomic(target, values[n % 2])
        finally:
            done.set()
            thread.join()
        assert reads > 0
        assert seen <= set(values)
        assert os.listdir(tmp_path) == ["ACTIVE"]


class TestAppendLine:
    def test_creates_the_file_and_appends_in_order(self, tmp_path: Path) -> None:
        """Each call adds its line at the end; the file is created on first use."""
        log = tmp_path / "events.jsonl"
        fsio.append_line(log, b"one\n")
        fsio.append_line(log, b"two\n")
        assert log.read_bytes() == b"one\ntwo\n"

    def test_a_line_after_a_torn_one_starts_on_its_own_line(self, tmp_path: Path) -> None:
        """A file left without its final newline gets one before the next line."""
        log = tmp_path / "events.jsonl"
        log.write_bytes(b"one\n{tor")
        fsio.append_line(log, b"two\n")
        assert log.read_bytes() == b"one\n{tor\ntwo\n"

    def test_an_empty_file_gets_no_leading_newline(self, tmp_path: Path) -> None:
        """An existing empty file is not torn: the first line starts at offset 0."""
        log = tmp_path / "events.jsonl"
        log.touch()
        fsio.append_line(log, b"one\n")
        assert log.read_bytes() == b"one\n"

    def test_concurrent_appends_do_not_interleave(self, tmp_path: Path) -> None:
        """Lines appended from several threads arrive whole (one O_APPEND write each)."""
        log = tmp_path / "events.jsonl"
        lines = {f"{t}-{i}-".encode() + b"x" * 200 + b"\n" for t in range(4) for i in range(25)}
        ordered = sorted(lines)

        def writer(offset: int) -> None:
            for line in ordered[offset::4]:
                fsio.append_line(log, line)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(log.read_bytes().splitlines(keepends=True)) == ordered


class TestSha256File:
    @pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 1024 * 1024 + 1])
    def test_matches_hashlib_across_chunk_boundaries(self, tmp_path: Path, size: int) -> None:
        """The streamed digest equals hashlib's over the whole content, at any size."""
        data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        path = tmp_path / "blob"
        path.write_bytes(data)
        assert fsio.sha256_file(path) == hashlib.sha256(data).hexdigest()


class TestFsync:
    def test_fsync_helpers_accept_files_and_folders(self, tmp_path: Path) -> None:
        """fsync_file flushes a file and fsync_dir a folder, without error."""
        path = tmp_path / "f"
        path.write_bytes(b"x")
        fsio.fsync_file(path)
        fsio.fsync_dir(tmp_path)

    def test_fsync_dir_refuses_a_file(self, tmp_path: Path) -> None:
        """fsync_dir opens with O_DIRECTORY, so a file is an error, not a silent no-op."""
        path = tmp_path / "f"
        path.write_bytes(b"x")
        with pytest.raises(NotADirectoryError):
            fsio.fsync_dir(path)


def _unlink_before_the_first_flock(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Makes the next flock find `path` unlinked after its open, as a racing sweep would."""
    real_flock = fcntl.flock
    first_call = [True]

    def flock(fd: int, operation: int) -> None:
        if first_call[0]:
            first_call[0] = False
            path.unlink()
        real_flock(fd, operation)

    monkeypatch.setattr("modeld_server.registry.fsio.fcntl.flock", flock)


class TestLocks:
    def test_try_lock_retries_when_the_file_is_unlinked_before_its_flock(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The fd try_lock returns holds the file the path names, not an unlinked one."""
        lock = tmp_path / "x.lock"
        _unlink_before_the_first_flock(monkeypatch, lock)
        fd = fsio.try_lock(lock)
        assert fd is not None
        assert os.path.samestat(os.fstat(fd), os.stat(lock))
        assert fsio.try_lock(lock) is None
        os.close(fd)

    def test_file_lock_retries_when_the_file_is_unlinked_before_its_flock(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Inside file_lock the lock is on the file the path names, so others are kept out."""
        lock = tmp_path / ".lock"
        _unlink_before_the_first_flock(monkeypatch, lock)
        with fsio.file_lock(lock):
            assert lock.exists()
            assert fsio.try_lock(lock) is None

    def test_try_lock_fails_while_another_open_holds_it(self, tmp_path: Path) -> None:
        """A second try_lock on the same path returns None until the first fd is closed."""
        lock = tmp_path / "x.lock"
        first = fsio.try_lock(lock)
        assert first is not None
        assert fsio.try_lock(lock) is None
        os.close(first)
        second = fsio.try_lock(lock)
        assert second is not None
        os.close(second)

    def test_file_lock_is_visible_to_try_lock_and_released_after_the_block(
        self, tmp_path: Path
    ) -> None:
        """Inside file_lock the path is taken; after the block it is free again."""
        lock = tmp_path / ".lock"
        with fsio.file_lock(lock):
            assert fsio.try_lock(lock) is None
        fd = fsio.try_lock(lock)
        assert fd is not None
        os.close(fd)

    def test_file_lock_is_released_when_the_block_raises(self, tmp_path: Path) -> None:
        """An exception inside the block still releases the lock."""
        lock = tmp_path / ".lock"
        with pytest.raises(RuntimeError), fsio.file_lock(lock):
            raise RuntimeError("boom")
        fd = fsio.try_lock(lock)
        assert fd is not None
        os.close(fd)

    def test_file_lock_serialises_threads(self, tmp_path: Path) -> None:
        """Threads with their own open exclude each other: no two are ever inside at once."""
        lock = tmp_path / ".lock"
        inside = 0
        most = 0

        def worker() -> None:
            nonlocal inside, most
            for _ in range(20):
                with fsio.file_lock(lock):
                    inside += 1
                    most = max(most, inside)
                    time.sleep(0.0005)
                    inside -= 1

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert most == 1


def aged(path: Path, seconds: float = 60) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


class TestStatCache:
    def test_an_unchanged_old_file_is_parsed_once(self, tmp_path: Path) -> None:
        path = tmp_path / "doc"
        path.write_text("7")
        aged(path)
        calls: list[int] = []

        def parse() -> int:
            calls.append(1)
            return int(path.read_text())

        cache: fsio.StatCache[int] = fsio.StatCache()
        for _ in range(3):
            assert cache.get(path, parse) == 7
        assert len(calls) == 1

    def test_a_replaced_file_is_parsed_again_even_with_an_old_mtime(self, tmp_path: Path) -> None:
        path = tmp_path / "doc"
        path.write_text("1")
        aged(path)
        cache: fsio.StatCache[str] = fsio.StatCache()
        assert cache.get(path, path.read_text) == "1"
        fsio.write_atomic(path, b"2")
        aged(path)
        assert cache.get(path, path.read_text) == "2"

    def test_a_young_file_is_never_taken_from_memory(self, tmp_path: Path) -> None:
        """Rewritten in place within the clock tick, it keeps its stamp: only re-reading tells."""
        path = tmp_path / "doc"
        path.write_text("1")
        cache: fsio.StatCache[str] = fsio.StatCache()
        assert cache.get(path, path.read_text) == "1"
        stamp = path.stat().st_mtime_ns
        path.write_text("2")
        os.utime(path, ns=(stamp, stamp))
        assert cache.get(path, path.read_text) == "2"

    def test_a_missing_file_is_the_parsers_to_answer_and_is_not_kept(
            self, tmp_path: Path) -> None:
        path = tmp_path / "doc"
        cache: fsio.StatCache[str] = fsio.StatCache()
        assert cache.get(path, lambda: "absent") == "absent"
        path.write_text("here")
        aged(path)
        assert cache.get(path, path.read_text) == "here"
        path.unlink()
        assert cache.get(path, lambda: "absent") == "absent"


class TestDiskErrorsUnderTheLock:
    def test_a_full_disk_is_resource_exhausted_naming_the_file(self, tmp_path: Path) -> None:
        """ENOSPC under the registry lock (a real full tmpfs) is ResourceExhausted naming the
        file being written, not OSError."""
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                  str(tmp_path)], capture_output=True, text=True, check=False)
        if mounted.returncode:
            pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        try:
            (tmp_path / "lock").touch()
            target = tmp_path / "big"
            with pytest.raises(ResourceExhausted) as err, fsio.file_lock(tmp_path / "lock"):
                fsio.write_atomic(target, b"x" * 128 * 1024)
            # os.write names no file: fsio names the file it was writing; its temp file is gone.
            assert err.value.message == f"no space left on device writing '{target}'"
            assert sorted(os.listdir(tmp_path)) == ["lock"]
        finally:
            subprocess.run(["umount", "-l", str(tmp_path)], check=False)

    def test_other_errors_pass_through(self, tmp_path: Path) -> None:
        """An error that is not the disk's refusal (a missing file) is raised unchanged."""
        with pytest.raises(FileNotFoundError), fsio.file_lock(tmp_path / "lock"):
            (tmp_path / "absent").read_bytes()
