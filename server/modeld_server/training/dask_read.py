"""engine=dask's lazy dask.dataframe of a dataset, read on the workers.

Parquet files carry their schema: a folder is read by dask.dataframe.read_parquet, or one
file a partition under key=value folders (this module's reader adds the partition
columns). CSV and JSON Lines files are read one file a partition, each by the local
engine's own reader of one file (multifile.read_one): a line with the wrong field count
(a record that does not parse) is dropped and counted with its file and line there, as
locally. Dask's own read_csv is not used: it infers dtypes from the first 256 KB, and a
word in a number column further on breaks a later partition mid-job.

The column types are decided before any partition is read for training, from one pass
over the files on the cluster (one task a file, sending back per-column counts): a
column that is numbers in every file is float64; a column that is text somewhere but
whose cells are numbers for at least 95% of its present cells over the whole dataset is
made numbers, and the rows whose cell there is not a number are dropped and counted as
malformed ("unparsable numbers"), which is what the local engine does after reading
(validation.coerce_numeric_text). The report's malformed entry is built from those counts
with the local engine's wording: the same count, the same first lines, the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modeld_server.errors import FailedPrecondition, quoted
from modeld_server.training.datasets import DatasetFiles, kind
from modeld_server.training.multifile import hive_types, hive_value, read_one

_FIRST = 10  # malformed records named in the report, as validation.py
_MOSTLY_NUMERIC = 0.95  # as validation._MOSTLY_NUMERIC


@dataclass(frozen=True)
class Columns:
    """The dataset's column types, decided over all its files.

    Attributes:
        dtypes: each column's dtype, in the order the local engine's frame has them.
        coerced: the columns that are text in some file but numbers overall: a row whose
            cell there is not a number is malformed.
    """

    dtypes: dict[str, str]
    coerced: list[str]


READ_COPIES = 3
"""Memory one worker needs to read a CSV or JSON Lines file, in times its parsed size: the
text, the parsed frame and the frame the checks build beside it."""
GZIP_RATIO = 5
"""How much larger a gzipped CSV is taken to be once read, when sizing it for a worker."""


def check_files_fit_a_worker(shown: str, files: list[Path], limits: list[int]) -> None:
    """Refuses a CSV or JSON Lines file one worker cannot read: each is one partition (its
    malformed lines counted by the local engine's reader, file:line), so it is not split.

    Args:
        limits: the workers' memory_limit in bytes (0: unlimited).

    Raises:
        FailedPrecondition: naming the file, its size, the smallest worker's limit and
            what to do instead.
    """
    bounded = [m for m in limits if m]
    if not bounded:
        return
    smallest = min(bounded)
    for path in files:
        size = path.stat().st_size * (GZIP_RATIO if path.name.lower().endswith(".gz") else 1)
        if size * READ_COPIES > smallest:
            raise FailedPrecondition(
                f"dataset.path {quoted(shown)}: {quoted(path.name)} holds about {size} bytes "
                f"of text; on engine=dask each CSV or JSON Lines file is read whole by one "
                f"worker, which needs {READ_COPIES} times that, more than the smallest "
                f"worker's memory_limit={smallest} bytes: split it into smaller files, or "
                "write it as a Parquet folder")


def read_frame(found: DatasetFiles, shown: str, client: Any,
               labels: frozenset[str] = frozenset()) -> tuple[Any, dict[str, Any]]:
    """The dataset as a lazy dask DataFrame, its rows in file order, and the report's
    malformed entry (the local engine's: the records dropped, named file:line).

    Args:
        labels: the target and eval_label columns: never made numbers from text (as
            locally: their text is a class label).
    """
    import dask.dataframe as dd

    files, first = found.files, found.files[0]
    if kind(first) == "parquet":
        malformed = no_malformed(found)
        if not found.keys:
            return dd.read_parquet([str(f) for f in files]), malformed
        types = hive_types(found.partitions)
        meta = _parquet_meta(first)
        for key, dtype in types.items():
            meta[key] = pd.Series(dtype=dtype)
        return dd.from_map(  # type: ignore[no-untyped-call]
            _read_parquet, [str(f) for f in files], found.partitions, args=[types, meta],
            meta=meta, label="modeld-read"), malformed
    workers = client.scheduler_info(n_workers=-1)["workers"]
    check_files_fit_a_worker(shown, files, [int(w.get("memory_limit") or 0)
                                            for w in workers.values()])
    paths = [str(f) for f in files]
    facts = client.gather(client.map(file_facts, paths, shown=shown, pure=False))
    decided = column_types(facts, labels)
    unparsable: list[tuple[int, list[Any]]] = []
    if _may_be_unparsable(facts, decided):
        unparsable = client.gather(client.map(
            file_unparsable, paths, shown=shown, coerced=decided.coerced,
            single=_numbered(found), pure=False))
    meta = pd.DataFrame({c: pd.Series(dtype=d) for c, d in decided.dtypes.items()})
    frame = dd.from_map(  # type: ignore[no-untyped-call]
        read_text_part, paths, args=[shown, decided], meta=meta, label="modeld-read")
    return frame, malformed_entry(found, facts, unparsable)


def no_malformed(found: DatasetFiles) -> dict[str, Any]:
    """The malformed entry of a Parquet dataset: as the local engine's one file, or its
    many files (read one by one, counting what is never there)."""
    if len(found.files) == 1 and not found.keys:
        return {"count": 0, "first_lines": [], "action": "none"}
    return {"count": 0, "first_lines": [], "action": "dropped", "wrong_field_count": 0,
            "unparsable_numbers": 0}


def _numbered(found: DatasetFiles) -> bool:
    """Whether the local engine names a line by its number alone (one CSV file, read as
    one path) rather than as file:line."""
    return len(found.files) == 1 and not found.keys and kind(found.files[0]) == "csv"


def file_facts(path: str, shown: str) -> dict[str, Any]:
    """One file's counts (on a worker): records read, rows kept, the wrong-field-count
    lines (count, first ones), and per column its kind ("num", "bool" or "obj"), present
    cells and present cells that are numbers."""
    part, read, _, wrong, count = read_one(Path(path), shown)
    kinds, present, numbers = {}, {}, {}
    for name in part.columns:
        column = part[name]
        kinds[str(name)] = _kind_of(column)
        present[str(name)] = int(column.notna().sum())
        numbers[str(name)] = (present[str(name)] if kinds[str(name)] != "obj"
                              else int(pd.to_numeric(column, errors="coerce").notna().sum()))
    return {"columns": [str(c) for c in part.columns], "rows": len(part), "read": read,
            "wrong": count, "wrong_first": wrong, "kinds": kinds, "present": present,
            "numbers": numbers}


def _kind_of(column: pd.Series) -> str:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if is_bool_dtype(column):
        return "bool"
    return "num" if is_numeric_dtype(column) else "obj"


def column_types(facts: list[dict[str, Any]], labels: frozenset[str]) -> Columns:
    """The columns' dtypes over all files, as the local engine's stacked frame has them
    once validation.coerce_numeric_text has run; files without rows say nothing (pandas
    leaves them out when it decides a stacked column's type)."""
    names = list(dict.fromkeys(c for f in facts for c in f["columns"]))
    dtypes: dict[str, str] = {}
    coerced: list[str] = []
    for name in names:
        told = [f for f in facts if f["rows"] and name in f["kinds"]]
        kinds = {f["kinds"][name] for f in told}
        if kinds <= {"num"}:
            dtypes[name] = "float64"
            continue
        dtypes[name] = "object"
        if kinds == {"bool"} or name in labels:
            continue
        present = sum(f["present"][name] for f in told)
        numbers = sum(f["numbers"][name] for f in told)
        if present and numbers / present >= _MOSTLY_NUMERIC:
            dtypes[name] = "float64"
            coerced.append(name)
    return Columns(dtypes, coerced)


def _may_be_unparsable(facts: list[dict[str, Any]], decided: Columns) -> bool:
    return any(f["numbers"].get(c, 0) < f["present"].get(c, 0)
               for f in facts for c in decided.coerced)


def file_unparsable(path: str, shown: str, coerced: list[str],
                    single: bool) -> tuple[int, list[Any]]:
    """One file's rows with a cell that is not a number in a column made numbers (on a
    worker): their count and the first of their lines as the local engine sorts them."""
    file = Path(path)
    part, _, good, _, _ = read_one(file, shown)
    bad = _unparsable(part, coerced)
    positions = bad.to_numpy().nonzero()[0]
    lines = [good[i] if single else f"{file.name}:{good[i]}" for i in positions]
    return len(positions), sorted(lines)[:_FIRST]


def _unparsable(part: pd.DataFrame, coerced: list[str]) -> pd.Series:
    bad = pd.Series(False, index=part.index)
    for name in coerced:
        if name in part.columns:
            column = part[name]
            bad |= column.notna() & pd.to_numeric(column, errors="coerce").isna()
    return bad


def malformed_entry(found: DatasetFiles, facts: list[dict[str, Any]],
                    unparsable: list[tuple[int, list[Any]]]) -> dict[str, Any]:
    """The report's malformed entry of a CSV or JSON Lines dataset, worded as the local
    engine's (validation.load_checked, multifile.load_checked, coerce_numeric_text)."""
    single = _numbered(found)
    wrong = sum(int(f["wrong"]) for f in facts)
    first = [n if single else f"{path.name}:{n}"
             for path, f in zip(found.files, facts, strict=True) for n in f["wrong_first"]]
    entry: dict[str, Any] = {"count": wrong, "first_lines": first[:_FIRST],
                             "action": "dropped", "wrong_field_count": wrong,
                             "unparsable_numbers": 0}
    numbers = sum(n for n, _ in unparsable)
    if numbers:
        entry["count"] = wrong + numbers
        entry["unparsable_numbers"] = numbers
        entry["first_lines"] = sorted(entry["first_lines"]
                                      + [line for _, lines in unparsable for line in lines]
                                      )[:_FIRST]
    return entry


def read_text_part(path: str, shown: str, decided: Columns) -> pd.DataFrame:
    """One CSV or JSON Lines file on a worker: the local engine's rows, less those whose
    cell in a column made numbers is not a number, in the decided dtypes."""
    part = read_one(Path(path), shown)[0]
    part.columns = [str(c) for c in part.columns]
    bad = _unparsable(part, decided.coerced)
    if bool(bad.any()):
        part = part.loc[~bad]
    part = part.reindex(columns=list(decided.dtypes))
    for name in decided.coerced:
        part[name] = pd.to_numeric(part[name], errors="coerce")
    return part.astype(decided.dtypes).reset_index(drop=True)


def _parquet_meta(path: Path) -> pd.DataFrame:
    """An empty frame of the Parquet file's columns and dtypes (its schema)."""
    import pyarrow.parquet as pq

    return pq.read_schema(path).empty_table().to_pandas()


def _read_parquet(path: str, partition: dict[str, str], types: dict[str, str],
                  meta: pd.DataFrame) -> pd.DataFrame:
    """One Parquet file under key=value folders on a worker: its rows and the partition
    columns, in the schema's dtypes."""
    part = pd.read_parquet(Path(path))
    for key, dtype in types.items():
        part[key] = hive_value(partition[key], dtype)
    part = part.reindex(columns=meta.columns)
    return part.astype(meta.dtypes.to_dict())



def start_sha256(found: DatasetFiles, client: Any) -> list[Any]:
    """Futures of each file's sha256 and stat stamp, one task a file on the workers."""
    return list(client.map(_digest, [str(f) for f in found.files], pure=False))


def finish_sha256(found: DatasetFiles, shown: str, futures: list[Any], client: Any) -> str:
    """The dataset's sha256 as the local engine records it (multifile.sha256: the file's
    own for one file, else one over every file's name and digest), once no file has
    changed since it was hashed (checked again on the workers now, when every read of
    the job is done).

    Raises:
        FailedPrecondition: a file whose size or modification time changed during the job
            (the job's reads may have seen two versions of it).
    """
    from modeld_server.training.multifile import combined_sha256

    hashed = client.gather(futures)
    now = client.gather(client.map(_stamp, [str(f) for f in found.files], pure=False))
    for path, (digest, then), stamp in zip(found.files, hashed, now, strict=True):
        if not digest or tuple(then) != tuple(stamp):
            raise FailedPrecondition(
                f"dataset.path {quoted(shown)}: {quoted(path.name)} changed during the job "
                "(its size or modification time is not what it was when the job read it): "
                "train again once the data is written")
    if len(found.files) == 1 and not found.keys:
        return str(hashed[0][0])
    return combined_sha256([(p.name, d) for p, (d, _) in zip(found.files, hashed, strict=True)])


def _digest(path: str) -> tuple[str, tuple[int, int, int]]:
    """A file's sha256 ("" when it cannot be read: it went away) and its stamp before."""
    from modeld_server.registry.fsio import sha256_file

    stamp = _stamp(path)
    try:
        return sha256_file(Path(path)), stamp
    except OSError:
        return "", stamp


def _stamp(path: str) -> tuple[int, int, int]:
    """A file's (size, modification time, inode); -1s when it is gone."""
    try:
        st = Path(path).stat()
    except OSError:
        return -1, -1, -1
    return st.st_size, st.st_mtime_ns, st.st_ino
