"""The local engine's dataset checks for engine=dask, as Dask reductions.

The job's process never holds the rows: it sends the cluster one graph of reductions
(counts, per-column missing values, minimum and maximum, distinct rows, the target's
classes or moments) and gets back numbers, each one per column or per class at most.
Filters run per partition with the local engine's own code (validation.apply_selection),
so a filter keeps the same rows on both engines. The answers (the report stored in the
manifest, the warnings, the errors) are worded as validation.py words them.

Malformed records (CSV lines, JSON Lines records, cells that are not numbers in a
number column) are dropped by the reader and counted per file on the cluster
(dask_read.py), as locally; here they count in rows_read and max_malformed_fraction.

Duplicates are rows equal in every column of the files (as pandas' duplicated() compares
them), found by a 64-bit hash of each row (dask_engine adds it as a column before the
columns are chosen). validation.drop_duplicates keeps each row's first occurrence in the
dataset's order, as locally, without a global shuffle of the rows: each partition sends
its distinct hashes with its number, a groupby (the hashes only, shuffled by hash) finds
the hashes in more than one partition with the first partition holding them, and each
partition then keeps a row when it is the first of its hash in the partition and no
earlier partition holds that hash. Only that table of shared hashes (16 bytes each) is
sent back to this process and out to every partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modeld_server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, quoted
from modeld_server.training import validation
from modeld_server.types import Task, TrainSpec

HASH = "__modeld_hash"
"""The column of each row's hash over all the files' columns (row_hashes)."""


def row_hashes(part: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of each row's values (rows pandas' duplicated() takes as equal, equal
    hashes: -0.0 as 0.0, every NaN as one)."""
    return pd.util.hash_pandas_object(part, index=False)


def validate(spec: TrainSpec, frame: Any, features: list[str], client: Any, max_rows: int,
             label_text: Any, malformed: dict[str, Any] | None = None
             ) -> tuple[Any, validation.Report, np.ndarray]:
    """Filters, drops rows without a target, and checks what is left, on the cluster.

    Args:
        frame: the lazy dask frame: every column of the files (the local engine profiles
            them all: missing values, constant columns, duplicates), then the row hash and
            the row position column.
        label_text: how a class label is written (the local engine's spelling).
        malformed: the records the reader dropped (dask_read.malformed_records), counted
            in rows_read and checked against max_malformed_fraction as locally.

    Returns:
        The frame of the rows to train on (features, target, position), the report, and
        for classification the sorted class labels (else an empty array).

    Raises:
        InvalidArgument: a filter that cannot apply to its column's type (as locally).
        FailedPrecondition / ResourceExhausted: as the local engine's checks.
    """
    ds = spec.dataset
    options = validation.ValidationOptions.from_json(spec.validation)
    selection = validation.Selection(filters=ds.filters)
    # The filters' type checks, on the empty frame of the columns' types: before any read.
    validation.apply_selection(frame._meta.copy(), selection, validation.Report())
    target = ds.target
    selected = frame.map_partitions(_select, selection, meta=frame._meta) if ds.filters \
        else frame
    kept = selected[selected[target].notnull()]
    columns = [c for c in frame.columns if not c.startswith("__")]
    others = [c for c in columns if c != target]
    numeric = [c for c in others if _numbers(frame._meta[c])]
    facts = {"read": frame.map_partitions(len).sum(),
             "selected": selected.map_partitions(len).sum(),
             "rows": kept.map_partitions(len).sum()}
    if options.drop_duplicates:
        kept = drop_duplicates(kept, client)
        facts["distinct"] = kept.map_partitions(len).sum()
    else:
        facts["distinct"] = kept[HASH].drop_duplicates(split_out=kept.npartitions).count()
    facts |= {
             "missing": kept[columns].isna().sum(),
             "min": kept[numeric].min(), "max": kept[numeric].max()}
    for name in others:
        if name not in numeric:  # text: its distinct values, missing ones aside
            facts[f"distinct:{name}"] = kept[name].nunique()
    if spec.task is Task.CLASSIFICATION:
        facts["classes"] = kept[target].value_counts()
    else:
        values = kept[target].astype("f8")
        facts |= {"mean": values.mean(), "std": values.std(ddof=0), "tmin": values.min(),
                  "tmax": values.max()}
    got = dict(zip(facts, client.compute(list(facts.values()), sync=True), strict=True))
    report = _report(spec, options, got, others, max_rows, label_text, malformed)
    labels = np.sort(np.asarray(got["classes"].index)) if "classes" in got else np.array([])
    carried = [c for c in frame.columns if c.startswith("__") and c != HASH]
    return kept[[*features, target, *carried]], report, labels


def drop_duplicates(kept: Any, client: Any) -> Any:
    """The rows of `kept` (a dask frame with the HASH column) less every repeat of an
    earlier row in the dataset's order: duplicated()'s keep="first", partition-wise.

    Computes the table of hashes found in more than one partition (in this process: 16
    bytes a shared hash); the frame returned is lazy.
    """
    firsts = kept[HASH].map_partitions(
        _partition_hashes, meta=pd.DataFrame({"h": pd.Series(dtype="u8"),
                                              "part": pd.Series(dtype="i8")}))
    grouped = firsts.groupby("h")["part"].agg(["min", "count"], split_out=firsts.npartitions)
    shared = client.compute(grouped[grouped["count"] > 1]["min"], sync=True)
    return kept.map_partitions(_keep_first, shared, meta=kept._meta)


def _partition_hashes(hashes: pd.Series, partition_info: dict[str, Any] | None = None
                      ) -> pd.DataFrame:
    """A partition's distinct hashes with its number."""
    number = partition_info["number"] if partition_info else 0
    return pd.DataFrame({"h": pd.unique(hashes.to_numpy()).astype("u8"), "part": number})


def _keep_first(part: pd.DataFrame, shared: pd.Series,
                partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """A partition's rows that are the first of their hash in the dataset: the first in
    the partition, of a hash no earlier partition holds (`shared`: hash -> the first
    partition holding it, for the hashes in several partitions)."""
    number = partition_info["number"] if partition_info else 0
    hashes = part[HASH].to_numpy()
    keep = ~pd.Series(hashes).duplicated().to_numpy()
    first = shared.reindex(hashes).to_numpy(dtype="f8")
    keep &= np.isnan(first) | (first == number)
    return part.loc[keep] if not keep.all() else part


def _select(part: pd.DataFrame, selection: validation.Selection) -> pd.DataFrame:
    """One partition's rows passing the filters (the local engine's code), index kept."""
    numbered = part.reset_index(drop=True).assign(__modeld_row=np.arange(len(part)))
    passed = validation.apply_selection(numbered, selection, validation.Report())
    return part.iloc[passed["__modeld_row"].to_numpy()]


def _numbers(column: Any) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return bool(is_numeric_dtype(column) or is_bool_dtype(column))


def _report(spec: TrainSpec, options: validation.ValidationOptions, got: dict[str, Any],
            others: list[str], max_rows: int, label_text: Any,
            malformed: dict[str, Any] | None = None) -> validation.Report:
    """The local engine's report and checks, from the reductions' answers."""
    ds, target = spec.dataset, spec.dataset.target
    dropped = int((malformed or {}).get("count", 0))
    read, selected, rows = (int(got["read"]) + dropped, int(got["selected"]) + dropped,
                            int(got["rows"]))
    if read > max_rows:
        raise ResourceExhausted(f"dataset {ds.path!r} has {read} rows, more than "
                                f"max_dataset_rows={max_rows}")
    report = validation.Report(rows_read=read, filtered_out=read - selected)
    report.malformed = malformed or {"count": 0, "first_lines": [], "action": "none"}
    if read and dropped / read > options.max_malformed_fraction:
        raise FailedPrecondition(
            f"{dropped} of {read} rows are malformed (first at lines "
            f"{report.malformed['first_lines']}), more than max_malformed_fraction="
            f"{options.max_malformed_fraction:g}")
    missing_target = selected - dropped - rows
    if missing_target and options.fail_on_missing_target:
        raise FailedPrecondition(f"{missing_target} rows have no target {quoted(target)}")
    report.missing_target = {"count": missing_target,
                             "action": "dropped" if missing_target else "none"}
    duplicates = rows - int(got["distinct"])
    report.duplicates = {"count": duplicates,
                         "action": "dropped" if options.drop_duplicates else "kept"}
    if options.drop_duplicates:
        rows -= duplicates
    if rows < options.min_rows:
        raise FailedPrecondition(f"{rows} usable rows, fewer than min_rows="
                                 f"{options.min_rows}")
    missing = got["missing"]
    report.missing_values = {str(c): int(n) for c, n in missing.items() if n}
    report.constant_columns = [c for c in others if (
        _constant(int(missing[c]), rows, got["min"].get(c), got["max"].get(c))
        if f"distinct:{c}" not in got
        else int(got[f"distinct:{c}"]) + (int(missing[c]) > 0) <= 1)]
    if report.constant_columns:
        report.warnings.append(f"constant columns kept (they carry no information): "
                               f"{', '.join(report.constant_columns)}")
    if duplicates:
        report.warnings.append(f"{duplicates} exact duplicate rows "
                               f"{report.duplicates['action']}")
    if "classes" in got:
        balance = got["classes"].sort_values(ascending=False, kind="stable")
        report.target = {"classes": {label_text(k): int(v) for k, v in balance.items()}}
        if len(balance) < 2:
            only = label_text(balance.index[0]) if len(balance) else ""
            raise FailedPrecondition(f"dataset.target {quoted(target)} has a single "
                                     f"class {quoted(only)}: classification needs at least two")
    else:
        report.target = {"mean": float(got["mean"]), "std": float(got["std"]),
                         "min": float(got["tmin"]), "max": float(got["tmax"])}
    report.rows_used = rows
    if rows < spec.cv_folds:
        raise InvalidArgument(f"{ds.path!r} has {rows} usable rows, fewer than "
                              f"cv_folds={spec.cv_folds}")
    return report


def _constant(missing: int, rows: int, low: Any, high: Any) -> bool:
    """As validation's: one value (all missing counts as one); with some missing, only
    when all are."""
    if missing:
        return missing == rows
    return bool(low == high)
