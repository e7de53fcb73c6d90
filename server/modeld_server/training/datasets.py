"""Finding and reading datasets under the data root.

The daemon only resolves paths and reads a bounded sample (sample.py); worker
processes read whole files.
"""

from __future__ import annotations

import csv
import gzip
import stat
import zlib
from pathlib import Path
from typing import IO

from modeld_server.errors import InvalidArgument, NotFound, PermissionDenied, quoted

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
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
    if not full.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise InvalidArgument(
            f"dataset.path {shown} is not a supported file: use .csv, .csv.gz, .parquet or .pq"
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


def resolve_dataset_files(data_root: Path, relative: str, *, folders: bool) -> list[Path]:
    """Like resolve_dataset, but with `folders` a directory of Parquet files is a dataset too.

    Names starting with '.' or '_' in the folder are skipped (writers' markers such as
    _SUCCESS or .crc files); every other entry must be a .parquet or .pq regular file
    that resolves under the data root.

    Returns:
        The files, sorted by name: the dataset's rows are theirs in that order.

    Raises:
        InvalidArgument: an empty folder, a subfolder or a file of another type in it.
        PermissionDenied: a file in it (a symlink) that leads outside the data root.
    """
    full, mode = _resolve_under(data_root, relative)
    if not (folders and stat.S_ISDIR(mode)):
        return [resolve_dataset(data_root, relative)]
    shown = quoted(relative)
    names = sorted(n for n in _list(full, shown) if not n.startswith((".", "_")))
    if not names:
        raise InvalidArgument(f"dataset.path {shown} is a folder without Parquet files")
    files = []
    for name in names:
        inside = f"{relative.rstrip('/')}/{name}"
        if not name.lower().endswith(PARQUET_SUFFIXES):
            raise InvalidArgument(f"dataset.path {shown} holds {quoted(name)}, which is not a "
                                  "Parquet file: a folder dataset holds .parquet or .pq files")
        files.append(resolve_dataset(data_root, inside))
    return files


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
    """Whether the file's name says Parquet (else it is CSV, maybe gzipped)."""
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def open_maybe_gzip(path: Path) -> IO[bytes] | gzip.GzipFile:
    """The file's bytes for reading, decompressed when its name ends in .gz (any case)."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")
