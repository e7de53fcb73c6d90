"""engine=dask's lazy dask.dataframe of a dataset, with the dtypes fixed before any read.

Dask infers a CSV file's dtypes from its first 256 KB: a column of integers there and a
decimal (or a word) further on breaks a later partition mid-job. Here the dtypes come
from a bounded sample of the first file (sample.read_sample, as Train reads it), integers
widened to float64 (a later blank cell is NaN, and XGBoost takes floats anyway), and are
passed to dask explicitly. Parquet files carry their schema. JSON Lines files and Parquet
files under key=value folders are read one file a partition by this module's readers,
which add the partition columns and cast to the sampled types. A malformed JSON Lines
record is dropped there and counted by malformed_records, as the local engine counts it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from modeld_server.training import jsonl
from modeld_server.training.datasets import DatasetFiles, kind
from modeld_server.training.multifile import hive_types, hive_value

_FIRST = 10  # malformed records named in the report, as validation.py


def read_frame(found: DatasetFiles, shown: str) -> Any:
    """The dataset as a lazy dask DataFrame, its rows in file order."""
    import dask.dataframe as dd

    files, first = found.files, found.files[0]
    if kind(first) == "parquet" and not found.keys:
        return dd.read_parquet([str(f) for f in files])
    if kind(first) == "csv":
        # One read_csv a file: a glob may mix gzipped files (one partition each: gzip
        # cannot be split) and plain ones (cut into 64 MB blocks).
        dtypes = csv_dtypes(first, shown)
        frames = [dd.read_csv(str(f), dtype=dtypes, **_compression(f)) for f in files]
        return frames[0] if len(frames) == 1 else dd.concat(frames)  # type: ignore[no-untyped-call]
    types = hive_types(found.partitions)
    meta = _sample_meta(first, shown)
    for key, dtype in types.items():
        meta[key] = pd.Series(dtype=dtype)
    partitions = found.partitions or [{} for _ in files]
    return dd.from_map(  # type: ignore[no-untyped-call]
        _read_part, [str(f) for f in files], partitions, args=[types, meta, shown],
        meta=meta, label="modeld-read")


def malformed_records(found: DatasetFiles, shown: str, client: Any) -> dict[str, Any] | None:
    """The report's malformed entry of a JSON Lines dataset, counted on the cluster (one
    task a file, sending back its count and first line numbers); None for other kinds.

    The local engine's wording: first lines as file:line, action "dropped".
    """
    if kind(found.files[0]) != "jsonl":
        return None
    futures = client.map(_bad_lines, [str(f) for f in found.files], shown=shown,
                         pure=False)
    counted = client.gather(futures)
    bad = [f"{f.name}:{n}" for f, (_, first) in zip(found.files, counted, strict=True)
           for n in first]
    count = sum(n for n, _ in counted)
    return {"count": count, "first_lines": bad[:_FIRST], "action": "dropped",
            "wrong_field_count": count, "unparsable_numbers": 0}


def _bad_lines(path: str, shown: str) -> tuple[int, list[int]]:
    """One file's malformed records: their count and first line numbers (on a worker)."""
    wrong = jsonl.read(Path(path), shown)[2]
    return len(wrong), wrong[:_FIRST]


def _compression(path: Path) -> dict[str, Any]:
    if path.name.lower().endswith(".gz"):
        return {"compression": "gzip", "blocksize": None}
    return {"blocksize": "64MB"}


def csv_dtypes(path: Path, shown: str) -> dict[str, str]:
    """Each column's dtype from the bounded sample: float64 for numbers, object else."""
    from modeld_server.training.sample import read_sample

    sample = pd.read_csv(io.StringIO(read_sample(path, shown).text))
    return {str(c): _widened(sample[c]) for c in sample.columns}


def _widened(column: pd.Series) -> str:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return "float64" if is_numeric_dtype(column) and not is_bool_dtype(column) else "object"


def _sample_meta(path: Path, shown: str) -> pd.DataFrame:
    """An empty frame of the file's columns and dtypes (Parquet: its schema; JSON Lines:
    the bounded sample's records, numbers widened to float64)."""
    if kind(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).empty_table().to_pandas()
    from modeld_server.training.sample import read_sample

    sample = jsonl.frame(jsonl.parse(read_sample(path, shown).text)[0])
    return pd.DataFrame({str(c): pd.Series(dtype=_widened(sample[c])) for c in sample.columns})


def _read_part(path: str, partition: dict[str, str], types: dict[str, str],
               meta: pd.DataFrame, shown: str) -> pd.DataFrame:
    """One file on a worker: its rows, the partition columns, the sampled dtypes."""
    file = Path(path)
    part = (pd.read_parquet(file) if kind(file) == "parquet"
            else jsonl.frame(jsonl.read(file, shown)[0]))
    for key, dtype in types.items():
        part[key] = hive_value(partition[key], dtype)
    part = part.reindex(columns=meta.columns)
    return part.astype(meta.dtypes.to_dict())
