"""Row hashes of an engine=dask version, computed on the cluster, for the quality gate.

A local version keeps the hashes of its training rows (gate.save_row_hashes: features
alone, and with the label; sorted, unique, .npy) so that a later gate can find the rows
the champion never saw and the known rows whose label changed. Here the same hashes are
made where the rows are: each partition is hashed on a worker with gate.hashes_of_rows
(the local engine's function, pandas' hash_pandas_object values), and only the hashes
come back to the job's process (two 64-bit hashes and a one-byte fold a row; the daemon
holds none of them). They are written in the local engine's format, so a local and a
Dask version of the same rows keep the same files, and either gate reads the other's.

Hashes follow the values' dtypes (1 and 1.0 hash differently). A Parquet dataset has its
dtypes in its files, the same on both engines. A CSV or JSON Lines dataset is read on
Dask with integer columns widened to float64 (dask_read.py), where pandas reads them as
int64 when the whole column holds integers and no blank: integral_columns finds those
columns (one reduction over the rows kept) and they are hashed as int64, as the local
engine would. Known limits, where a row then looks unseen to the other engine's gate: a
CSV column written as "1.0" throughout (float64 locally, int64 here), and one whose only
blanks are in rows validation dropped (float64 locally: pandas saw the blank).

The job's process also keeps the rows' fold numbers: the challenger's held-out
predictions come fold after fold (dask_engine._cross_validate), and the gate puts them
back in dataset order to pair them with the hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server.errors import IntegrityError
from modeld_server.features import FeatureSchema
from modeld_server.training import gate

_POS = "__modeld_pos"


@dataclass(frozen=True)
class Seen:
    """The challenger's rows as the gate compares them with a champion's row files."""

    features: np.ndarray
    """uint64 hash of each row's features, in dataset order."""
    labeled: np.ndarray | None
    """uint64 hash of each row's features and label, in dataset order (None: no label)."""
    order: np.ndarray
    """Held-out prediction i is dataset row order[i]."""
    columns: tuple[str, ...]
    """The feature columns hashed, in order (a champion's hashes compare only if its
    features are these: the columns' hashes are mixed in order)."""
    label: str
    """The label column hashed with them ('' for none)."""
    sizes: tuple[int, ...] = ()
    """Rows in each partition the hashes were made from (to send a mask back per
    partition); () when the rows are in one worker's prepared data."""

    def save(self, folder: Path) -> None:
        """Writes the row files as gate.save_row_hashes writes them."""
        np.save(folder / gate.ROWS_FILE, gate._sorted_unique(self.features), allow_pickle=False)
        if self.labeled is not None:
            np.save(folder / gate.LABELED_ROWS_FILE, gate._sorted_unique(self.labeled),
                    allow_pickle=False)


Outputs = Callable[[Any, FeatureSchema, np.ndarray], np.ndarray]
"""(the champion's artifacts.Fitted, its schema, a row mask in dataset order) -> its raw
outputs on those rows: probabilities in its class order, or predictions."""


# ---- the XGBoost path: the validated dask frame ---------------------------------------------

def integral_columns(frame: Any, columns: list[str], client: Any) -> list[str]:
    """The float64 columns of `columns` holding only integers and no missing value (a CSV
    column pandas reads as int64), by one reduction on the cluster."""
    floats = [c for c in columns if str(frame._meta[c].dtype) == "float64"]
    if not floats:
        return []
    # NaN and inf give NaN modulo 1, which is != 0: counted as not integral.
    counts = client.compute([(frame[c] % 1 != 0).sum() for c in floats], sync=True)
    return [c for c, n in zip(floats, counts, strict=True) if int(n) == 0]


def collect(frame: Any, features: list[str], label: str, seed: int, folds: int,
            integral: list[str], client: Any) -> Seen:
    """The hashes of the validated frame's rows, made per partition on the workers.

    Args:
        frame: the validated rows (features, label, the row position column).
        label: the target column ('' for none).
        integral: columns to hash as int64 (integral_columns).
    """
    import dask

    parts = [dask.delayed(_partition_hashes)(p, features, label, integral, seed, folds)  # type: ignore[attr-defined]
             for p in frame.to_delayed()]
    got = client.compute(parts, sync=True)
    fold = np.concatenate([g[2] for g in got]) if got else np.zeros(0, dtype=np.int8)
    return Seen(np.concatenate([g[0] for g in got]),
                np.concatenate([g[1] for g in got]) if label else None,
                np.argsort(fold, kind="stable"), tuple(features), label,
                tuple(len(g[0]) for g in got))


def _partition_hashes(part: Any, features: list[str], label: str, integral: list[str],
                      seed: int, folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On a worker: one partition's feature hashes, labeled hashes and folds."""
    from modeld_server.training.dask_engine import fold_of

    columns = [*features, label] if label else features
    values = part[columns].astype({c: "int64" for c in integral if c in columns})
    sets = [features, columns] if label else [features]
    hashes = gate.hashes_of_rows(values, sets)
    fold = fold_of(part[_POS].to_numpy(), seed, folds).astype(np.int8)  # cv_folds <= 20
    return hashes[0], hashes[-1] if label else np.zeros(0, dtype=np.uint64), fold


def outputs_on_partitions(frame: Any, sizes: tuple[int, ...], task: str,
                          client: Any) -> Outputs:
    """The champion's raw outputs on masked rows of the validated frame, per partition
    on the workers (the champion's model travels in the graph: a few MB at most)."""
    import dask

    def outputs(fitted: Any, schema: FeatureSchema, mask: np.ndarray) -> np.ndarray:
        parts = frame.to_delayed()
        if len(parts) != len(sizes) or sum(sizes) != len(mask):
            raise IntegrityError("the dataset's partitions changed between two reads")
        bounds = np.cumsum((0, *sizes))
        model = client.scatter(fitted)  # sent once, not once a partition
        wanted = [dask.delayed(_partition_outputs)(p, model, schema.to_json(), task,  # type: ignore[attr-defined]
                                                   mask[bounds[i]:bounds[i + 1]])
                  for i, p in enumerate(parts) if mask[bounds[i]:bounds[i + 1]].any()]
        return np.concatenate(client.compute(wanted, sync=True))

    return outputs


def _partition_outputs(part: Any, fitted: Any, schema_json: dict[str, Any], task: str,
                       mask: np.ndarray) -> np.ndarray:
    from modeld_server.training.dask_encode import _plain_objects

    schema = FeatureSchema.from_json(schema_json)
    if len(part) != len(mask):
        raise IntegrityError(f"a partition of {len(part)} rows, {len(mask)} expected")
    return raw_outputs(fitted, schema, task, _plain_objects(part.iloc[mask], schema))


def raw_outputs(fitted: Any, schema: FeatureSchema, task: str, frame: Any) -> np.ndarray:
    """What gate.score_artifact computes before scoring: class probabilities in the
    model's class order (classification), else predictions."""
    matrix = fitted.preprocess.transform(schema.matrix_from_frame(frame))
    if task == "classification":
        return np.asarray(fitted.estimator.predict_proba(matrix), dtype=np.float64)
    return np.asarray(fitted.estimator.predict(matrix))


# ---- the scikit-learn path: one worker holds the prepared rows -------------------------------

def of_prepared(client: Any, prepared: Any, label: str) -> Seen:
    """The hashes of the rows a worker prepared (prepare.Prepared: the local engine's
    frame, so the very hashes the local engine keeps); held-out predictions of the local
    engine's folds are in dataset order already."""
    features, labeled, columns = client.submit(_prepared_hashes, prepared, label,
                                               pure=False).result()
    return Seen(features, labeled, np.arange(len(features)), tuple(columns), label)


def _prepared_hashes(data: Any, label: str
                     ) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    sets = [data.features, [*data.features, label]] if label else [data.features]
    hashes = gate.hashes_of_rows(data.frame, sets)
    return hashes[0], hashes[1] if label else None, list(data.features)


def outputs_on_prepared(client: Any, prepared: Any, task: str) -> Outputs:
    """The champion's raw outputs on masked rows, on the worker holding them."""
    def outputs(fitted: Any, schema: FeatureSchema, mask: np.ndarray) -> np.ndarray:
        got: np.ndarray = client.submit(_prepared_outputs, prepared, fitted, schema.to_json(),
                                        task, mask, pure=False).result()
        return got

    return outputs


def _prepared_outputs(data: Any, fitted: Any, schema_json: dict[str, Any], task: str,
                      mask: np.ndarray) -> np.ndarray:
    return raw_outputs(fitted, FeatureSchema.from_json(schema_json), task,
                       data.frame.iloc[np.flatnonzero(mask)])
