"""Freshness warnings for GetStatus: the active version is old, was trained on few rows,
or its dataset changed on disk since training.

Warnings, not failures: the version keeps serving. GetStatus stays cheap: the policy is
a cached document, and a dataset costs one stat per call; its sha256 is computed on a
background thread the first time a (size, mtime, ctime, inode) stamp is seen, and
remembered. Until then the dataset check says nothing. A glob or folder dataset costs a
listing and one stat per matched file (at most datasets.MAX_FILES), and its digest is
the one the training recorded (multifile.sha256: every file's name and sha256).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from modeld_server.errors import ModeldError
from modeld_server.registry.manifest import VersionSummary
from modeld_server.training import multifile
from modeld_server.training.datasets import GLOB_CHARS, dataset_files
from modeld_server.training.gate import Policy

log = structlog.get_logger(__name__)

MAX_AGE, MIN_TRAINING_ROWS, DATASET_CHANGED = "max_age", "min_training_rows", "dataset_changed"


@dataclass(frozen=True)
class StatusWarning:
    """One reason to look at a model: `kind` for scripts, `message` for people."""

    kind: str
    message: str


Stamp = tuple[tuple[str, int, int, int, int], ...]


class DatasetHashes:
    """sha256 of dataset files by stat stamp, computed off the caller's thread."""

    def __init__(self, data_root: Path) -> None:
        self._root = data_root
        self._known: dict[str, tuple[Stamp, str | None]] = {}
        self._pending: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset-hash")

    def get(self, relative: str) -> str | None:
        """The dataset's sha256 as it is now (a glob's or folder's over all its files); ""
        when it is gone (or a glob matches nothing); None while unknown (being hashed now,
        or unreadable)."""
        stamp = self._stamp(relative)
        if stamp is None:
            return ""
        with self._lock:
            known = self._known.get(relative)
            if known is not None and known[0] == stamp:
                return known[1]
            if relative not in self._pending:
                self._pending[relative] = self._pool.submit(self._hash, relative, stamp)
        return None

    def _stamp(self, relative: str) -> Stamp | None:
        """Each file's (name, inode, size, mtime, ctime); None when the dataset is gone."""
        path = self._root / relative
        try:
            if not (GLOB_CHARS & set(relative)) and not path.is_dir():
                files = [path]  # one file: one stat, as before globs and folders
            else:
                found = dataset_files(self._root, relative)
                files = [found] if isinstance(found, Path) else found.files
            stats = [(str(f), os.stat(f)) for f in files]
        except (ModeldError, OSError):
            return None
        return tuple((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                     for name, st in stats)

    def _hash(self, relative: str, stamp: Stamp) -> None:
        digest: str | None
        try:
            digest = multifile.sha256(dataset_files(self._root, relative))
        except (ModeldError, OSError) as exc:
            log.info("dataset_unhashable", path=relative, error=str(exc))
            digest = None
        with self._lock:
            self._known[relative] = (stamp, digest)
            self._pending.pop(relative, None)

    def settle(self, timeout: float = 60.0) -> None:
        """Waits for the hashes asked for so far (tests; GetStatus never waits)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Freshness:
    """Checks an active version's summary against its model's policy."""

    def __init__(self, data_root: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.hashes = DatasetHashes(data_root)

    def warnings(self, policy: Policy, summary: VersionSummary | None) -> list[StatusWarning]:
        """What is stale about the version `summary` describes (the index's manifest
        summary); empty when nothing is, or there is no active version."""
        if not summary:
            return []
        dataset = summary.dataset or {}
        found = [self._age(policy, summary.created_at),
                 self._rows(policy, dataset.get("rows")),
                 self._dataset(dataset.get("path"), dataset.get("sha256"))]
        return [w for w in found if w is not None]

    def _age(self, policy: Policy, created_at: object) -> StatusWarning | None:
        if not policy.max_age_seconds or not isinstance(created_at, str):
            return None
        age = self.clock() - datetime.fromisoformat(created_at).timestamp()
        if age <= policy.max_age_seconds:
            return None
        return StatusWarning(MAX_AGE, f"trained {format_seconds(age)} ago, older than the "
                                f"policy's max_age {format_seconds(policy.max_age_seconds)}")

    @staticmethod
    def _rows(policy: Policy, rows: object) -> StatusWarning | None:
        if not policy.min_training_rows or not isinstance(rows, int) \
                or rows >= policy.min_training_rows:
            return None
        return StatusWarning(MIN_TRAINING_ROWS, f"trained on {rows} rows, fewer than the policy's "
                                          f"min_training_rows {policy.min_training_rows}")

    def _dataset(self, path: object, sha256: object) -> StatusWarning | None:
        if not isinstance(path, str) or not isinstance(sha256, str) or not path or not sha256:
            return None  # a manifest without the dataset's hash: nothing to compare
        now = self.hashes.get(path)
        if now is None or now == sha256:
            return None
        if not now:
            return StatusWarning(DATASET_CHANGED, f"dataset {path!r} is no longer on disk")
        return StatusWarning(DATASET_CHANGED, f"dataset {path!r} changed on disk since training "
                                        f"(sha256 {now[:12]}, trained on {sha256[:12]})")

    def close(self) -> None:
        self.hashes.close()


def format_seconds(seconds: float) -> str:
    """A duration as its largest whole unit with one decimal: '31.0d', '5.5h', '42.0s'."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"
