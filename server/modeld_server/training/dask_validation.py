"""The local engine's dataset checks for engine=dask, as Dask reductions.

The job's process never holds the rows: it sends the cluster one graph of reductions
(counts, per-column missing values, minimum and maximum, distinct rows, the target's
classes or moments) and gets back numbers, each one per column or per class at most.
Filters run per partition with the local engine's own code (validation.apply_selection),
so a filter keeps the same rows on both engines. The answers (the report stored in the
manifest, the warnings, the errors) are worded as validation.py words them.

Malformed records: JSON Lines records are dropped by the reader and counted per file on
the cluster (dask_read.malformed_records), as locally. Not done here (this version):
malformed CSV lines (dask reads the CSV with the dtypes checked at Train, and a line or
cell that does not parse fails the job naming its file),
dropping duplicates (they are counted and kept; drop_duplicates is refused at Train).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modeld_server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, quoted
from modeld_server.training import validation
from modeld_server.training.cluster import DROP_DUPLICATES
from modeld_server.types import Task, TrainSpec


def check_options(spec: TrainSpec) -> validation.ValidationOptions:
    """The request's validation options, refusing those this path does not do.

    Raises:
        FailedPrecondition: validation.drop_duplicates, which would need a global shuffle.
    """
    options = validation.ValidationOptions.from_json(spec.validation)
    if options.drop_duplicates:
        raise FailedPrecondition(DROP_DUPLICATES.format(algorithm=quoted(spec.algorithm)))
    return options


def validate(spec: TrainSpec, frame: Any, features: list[str], client: Any, max_rows: int,
             label_text: Any, malformed: dict[str, Any] | None = None
             ) -> tuple[Any, validation.Report, np.ndarray]:
    """Filters, drops rows without a target, and checks what is left, on the cluster.

    Args:
        frame: the lazy dask frame: the features, the target, any filtered column, and
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
    ds, options = spec.dataset, check_options(spec)
    selection = validation.Selection(filters=ds.filters)
    # The filters' type checks, on the empty frame of the columns' types: before any read.
    validation.apply_selection(frame._meta.copy(), selection, validation.Report())
    target = ds.target
    selected = frame.map_partitions(_select, selection, meta=frame._meta) if ds.filters \
        else frame
    kept = selected[selected[target].notnull()]
    columns = [*features, target]
    numeric = [c for c in features if _numbers(frame._meta[c])]
    hashes = kept[columns].map_partitions(_row_hashes, meta=("h", "u8"))
    facts = {"read": frame.map_partitions(len).sum(),
             "selected": selected.map_partitions(len).sum(),
             "rows": kept.map_partitions(len).sum(),
             "distinct": hashes.drop_duplicates(split_out=kept.npartitions).count(),
             "missing": kept[columns].isna().sum(),
             "min": kept[numeric].min(), "max": kept[numeric].max()}
    for name in features:
        if name not in numeric:  # text: its distinct values, missing ones aside
            facts[f"distinct:{name}"] = kept[name].nunique()
    if spec.task is Task.CLASSIFICATION:
        facts["classes"] = kept[target].value_counts()
    else:
        values = kept[target].astype("f8")
        facts |= {"mean": values.mean(), "std": values.std(ddof=0), "tmin": values.min(),
                  "tmax": values.max()}
    got = dict(zip(facts, client.compute(list(facts.values()), sync=True), strict=True))
    report = _report(spec, options, got, features, max_rows, label_text, malformed)
    labels = np.sort(np.asarray(got["classes"].index)) if "classes" in got else np.array([])
    return kept[[*features, target, *[c for c in frame.columns if c.startswith("__")]]], \
        report, labels


def _select(part: pd.DataFrame, selection: validation.Selection) -> pd.DataFrame:
    """One partition's rows passing the filters (the local engine's code), index kept."""
    numbered = part.reset_index(drop=True).assign(__modeld_row=np.arange(len(part)))
    passed = validation.apply_selection(numbered, selection, validation.Report())
    return part.iloc[passed["__modeld_row"].to_numpy()]


def _numbers(column: Any) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return bool(is_numeric_dtype(column) or is_bool_dtype(column))


def _row_hashes(part: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of each row's values (two equal rows, equal hashes)."""
    return pd.util.hash_pandas_object(part, index=False)


def _report(spec: TrainSpec, options: validation.ValidationOptions, got: dict[str, Any],
            features: list[str], max_rows: int, label_text: Any,
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
    report.duplicates = {"count": duplicates, "action": "kept"}
    if rows < options.min_rows:
        raise FailedPrecondition(f"{rows} usable rows, fewer than min_rows="
                                 f"{options.min_rows}")
    missing = got["missing"]
    report.missing_values = {str(c): int(n) for c, n in missing.items() if n}
    report.constant_columns = [c for c in features if (
        _constant(int(missing[c]), rows, got["min"].get(c), got["max"].get(c))
        if f"distinct:{c}" not in got
        else int(got[f"distinct:{c}"]) + (int(missing[c]) > 0) <= 1)]
    if report.constant_columns:
        report.warnings.append(f"constant columns kept (they carry no information): "
                               f"{', '.join(report.constant_columns)}")
    if duplicates:
        report.warnings.append(f"{duplicates} exact duplicate rows kept")
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
