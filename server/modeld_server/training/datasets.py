"""Finding and reading datasets under the data root.

A dataset is one file (CSV, gzip CSV, JSON Lines, Parquet), a glob of files of one kind
(`data/2026-*.csv`), or a folder of Parquet files, whose `key=value/` subfolders (hive
partitioning) become columns. Every file must resolve under the data root.

The daemon only resolves paths and reads a bounded sample (sample.py); worker
processes read whole files.
"""

from __future__ import annotations

import csv
import glob
import gzip
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from modeld_server.errors import InvalidArgument, NotFound, PermissionDenied, quoted

CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_FILES = 10_000
"""The most files one dataset (a glob or a folder) may hold."""
GLOB_CHARS = frozenset("*?[")
CSV_READ_ERRORS = (UnicodeDecodeError, EOFError, OSError, csv.Error, zlib.error)
"""What reading a (gzipped) CSV file raises for a bad file: binary bytes, a truncated or
corrupt gzip stream (EOFError, BadGzipFile, zlib.error), a broken quote."""


def unreadable(shown: str, kind: str, exc: BaseException) -> InvalidArgument:
    """The error for a dataset file the library could not parse, with its own reason.

    Args:
        shown: dataset.path as the request spelled it.
        kind: "CSV" or "Parquet".
        exc: what the reader raised.
    """
    return InvalidArgument(f"dataset.path {quoted(shown)} is not a readable {kind} file: {exc}")


def resolve_dataset(data_root: Path, relative: str) -> Path:
    """Resolves `relative` under `data_root`, refusing anything that leaves it.

    Args:
        data_root: the configured data root.
        relative: TrainRequest.dataset.path.

    Returns:
        The absolute, symlink-free path of an existing file.

    Raises:
        InvalidArgument: empty path, unsupported file type, not a regular file (a
            directory, FIFO, socket or device), or a path the OS cannot look up (a name
            too long, a symlink loop).
        PermissionDenied: absolute path, '..' or a symlink leading outside the root, or a
            file the daemon may not read.
        NotFound: no such file.
    """
    full, mode = _resolve_under(data_root, relative)
    shown = quoted(relative)
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"dataset.path {shown} is not a regular file (it is "
                              f"{_kind(mode)})")
    if not full.name.lower().endswith(CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES):
        raise InvalidArgument(
            f"dataset.path {shown} is not a supported file: use .csv, .csv.gz, .jsonl, "
            ".jsonl.gz, .parquet or .pq"
        )
    return full


def _resolve_under(data_root: Path, relative: str) -> tuple[Path, int]:
    """The resolved path of `relative` under the root and its mode (see resolve_dataset)."""
    if not relative:
        raise InvalidArgument("dataset.path is required")
    if "\x00" in relative:
        raise InvalidArgument("dataset.path contains a NUL character")
    shown = quoted(relative)
    if Path(relative).is_absolute():
        raise PermissionDenied(f"dataset.path {shown} is absolute; give a path under the data root")
    root = data_root.resolve()
    try:
        full = (root / relative).resolve()
        if not full.is_relative_to(root):
            raise PermissionDenied(f"dataset.path {shown} leads outside the data root")
        mode = full.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        # The root is no secret (GetStatus shows it) and says where to put the file.
        raise NotFound(f"dataset.path {shown} not found under the data root {root}") from None
    except RuntimeError:  # Python 3.11's Path.resolve() on ELOOP
        raise InvalidArgument(f"dataset.path {shown} is a symlink loop") from None
    except PermissionError:
        raise PermissionDenied(f"dataset.path {shown} is not readable by the daemon") from None
    except OSError as exc:  # ENAMETOOLONG and kin: the OS cannot even look it up
        raise InvalidArgument(f"dataset.path {shown} cannot be looked up: "
                              f"{exc.strerror or exc}") from None
    return full, mode


@dataclass(frozen=True)
class DatasetFiles:
    """A dataset of several files (or of one file in a hive-style folder).

    Attributes:
        files: the files, in the order their rows are the dataset's.
        partitions: for each file, the `key=value` folders above it (hive partitioning),
            as {key: value text}; every file has the same keys.
    """

    files: list[Path]
    partitions: list[dict[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """The partition columns, in folder order."""
        return list(self.partitions[0]) if self.partitions else []


def kind(path: Path) -> str:
    """'parquet', 'jsonl' or 'csv' (gzipped or not), from the file's name."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "jsonl" if name.endswith(JSONL_SUFFIXES) else "csv"


def dataset_files(data_root: Path, relative: str) -> Path | DatasetFiles:
    """What a job reads: the one file's path, or the files of a glob or folder."""
    found = resolve_files(data_root, relative)
    if len(found.files) == 1 and not found.keys:
        return found.files[0]
    return found


def resolve_dataset_files(data_root: Path, relative: str, *, folders: bool) -> list[Path]:
    """The dataset's files (see resolve_files); without `folders`, one file only."""
    if not folders:
        return [resolve_dataset(data_root, relative)]
    return resolve_files(data_root, relative).files


def resolve_files(data_root: Path, relative: str) -> DatasetFiles:
    """Resolves a file, a glob of files or a folder of Parquet files under the data root.

    In a folder, names starting with '.' or '_' are skipped (writers' markers such as
    _SUCCESS or .crc files); subfolders must be named key=value (hive partitioning) and
    every other entry must be a .parquet or .pq regular file. A glob's matches must be
    files of one kind.

    Returns:
        The files, sorted by path: the dataset's rows are theirs in that order.

    Raises:
        InvalidArgument: a glob that matches nothing, an empty folder, a subfolder not
            named key=value, a file of another type, files of mixed kinds, or more
            than MAX_FILES files.
        PermissionDenied: a file (a symlink) that leads outside the data root.
    """
    if GLOB_CHARS & set(relative):
        return _glob(data_root, relative)
    full, mode = _resolve_under(data_root, relative)
    if not stat.S_ISDIR(mode):
        return DatasetFiles([resolve_dataset(data_root, relative)])
    shown = quoted(relative)
    found: list[tuple[str, dict[str, str]]] = []
    _walk(full, relative.rstrip("/"), {}, found, shown)
    if not found:
        raise InvalidArgument(f"dataset.path {shown} is a folder without Parquet files")
    _check_count(shown, len(found))
    keys = {tuple(p) for _, p in found}
    if len(keys) > 1:
        raise InvalidArgument(f"dataset.path {shown} has partition folders of different "
                              f"keys: {' and '.join('/'.join(k) or '(none)' for k in keys)}")
    files = [resolve_dataset(data_root, inside) for inside, _ in found]
    partitions = [p for _, p in found] if any(p for _, p in found) else []
    return DatasetFiles(files, partitions)


def _walk(folder: Path, inside: str, keys: dict[str, str],
          found: list[tuple[str, dict[str, str]]], shown: str) -> None:
    """Collects a folder's Parquet files, descending into key=value subfolders."""
    for name in sorted(n for n in _list(folder, shown) if not n.startswith((".", "_"))):
        path, where = folder / name, f"{inside}/{name}"
        if path.is_dir() and not path.is_symlink():
            key, eq, value = name.partition("=")
            if not (eq and key):
                raise InvalidArgument(
                    f"dataset.path {shown} holds folder {quoted(where)}: a subfolder of a "
                    "dataset must be named key=value (hive partitioning)")
            _walk(path, where, keys | {key: value}, found, shown)
            _check_count(shown, len(found))
        elif not name.lower().endswith(PARQUET_SUFFIXES):
            raise InvalidArgument(f"dataset.path {shown} holds {quoted(name)}, which is not a "
                                  "Parquet file: a folder dataset holds .parquet or .pq files")
        else:
            found.append((where, keys))


def _glob(data_root: Path, pattern: str) -> DatasetFiles:
    """The files a glob matches under the root, each resolved like a single dataset."""
    shown = quoted(pattern)
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts or "**" in pattern:
        raise InvalidArgument(f"dataset.path {shown}: a glob must be relative to the data "
                              "root, without '..' or '**'")
    root = data_root.resolve()
    names = sorted(glob.glob(pattern, root_dir=root))
    if not names:
        raise InvalidArgument(f"dataset.path {shown} matches no file under the data root")
    _check_count(shown, len(names))
    files = [resolve_dataset(data_root, name) for name in names]
    kinds = {kind(f): f for f in files}
    if len(kinds) > 1:
        first, second = list(kinds.values())[:2]
        raise InvalidArgument(f"dataset.path {shown} matches files of different kinds: "
                              f"{quoted(first.name)} and {quoted(second.name)}")
    return DatasetFiles(files)


def _check_count(shown: str, count: int) -> None:
    if count > MAX_FILES:
        raise InvalidArgument(f"dataset.path {shown} holds more than {MAX_FILES} files, the "
                              "most a dataset may have")


def _list(folder: Path, shown: str) -> list[str]:
    try:
        return [entry.name for entry in folder.iterdir()]
    except PermissionError:
        raise PermissionDenied(f"dataset.path {shown} is not readable by the daemon") from None


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device")]
    return next((name for test, name in kinds if test(mode)), "not a file")


def is_parquet(path: Path) -> bool:
    """Whether the file's name says Parquet (else it is CSV or JSON Lines, maybe gzipped)."""
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def is_jsonl(path: Path) -> bool:
    """Whether the file's name says JSON Lines (.jsonl, .jsonl.gz)."""
    return path.name.lower().endswith(JSONL_SUFFIXES)


def open_maybe_gzip(path: Path) -> IO[bytes] | gzip.GzipFile:
    """The file's bytes for reading, decompressed when its name ends in .gz (any case)."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")
