"""TrainRequest.engine=dask: XGBoost cross-validated and fitted on a Dask cluster.

Runs in the job's worker process like the local engine, which imports this module only
for an engine=dask job (the forkserver does not preload dask). The worker connects a
distributed.Client to the daemon's scheduler, and the cluster's workers read the dataset
(dask_read.py: any form datasets.py resolves), validate it (dask_validation.py), encode it
(dask_encode.py) and train with xgboost.dask. The scikit-learn algorithms go to
dask_sklearn.py instead: each of their fits is one Dask task. This process holds only
what is small: dtypes, counts, the classes, the held-out predictions of each fold
with their labels, and the rows' hashes for the gate (dask_hashes.py: 17 bytes a row).
What it publishes is a plain XGBClassifier / XGBRegressor in the same artifact format as
the local engine, so serving cannot tell.

Folds are assigned per row by a seeded hash of the row's position in the dataset (no
shuffle, no stratification): the assignment is the same whatever the partitioning and
however many workers, so only XGBoost's own distributed sketching can make two runs differ.

Cancelling: the daemon kills this process; its scheduler connection drops, and the
scheduler then releases every future and key the client held (that is what closing a
client does), so the cluster's workers stop computing for this job.
"""

from __future__ import annotations

import platform
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server import artifacts
from modeld_server.errors import (
    FailedPrecondition,
    InvalidArgument,
    ModeldError,
    Unavailable,
    quoted,
)
from modeld_server.features import FeatureSchema
from modeld_server.monitoring import profile
from modeld_server.training import (
    dask_encode,
    dask_gate,
    dask_hashes,
    dask_profile,
    dask_sklearn,
    dask_validation,
    gate,
    importance,
    oof,
)
from modeld_server.training import metrics as metric_fns
from modeld_server.training.cluster import DISTRIBUTED
from modeld_server.training.dask_read import finish_sha256, read_frame, start_sha256
from modeld_server.training.datasets import DatasetFiles, kind, resolve_files
from modeld_server.training.estimators import build_estimator, get_algorithm
from modeld_server.training.prepare import json_value
from modeld_server.types import Task, TrainSpec

Report = Callable[[str, float, str, dict[str, Any]], None]

_CONNECT_SECONDS = 60
_Y, _POS = "__modeld_y", "__modeld_pos"
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15


def fold_of(positions: np.ndarray, seed: int, folds: int) -> np.ndarray:
    """The fold of each row: splitmix64 of (seed, row position) modulo `folds`.

    Args:
        positions: rows' 0-based positions in the whole dataset.

    Returns:
        int64 fold numbers 0..folds-1, one per position.
    """
    # Arrays wrap silently modulo 2**64, as splitmix64 wants; the scalar is wrapped here.
    z = positions.astype(np.uint64) + np.uint64((seed * _GOLDEN) % (1 << 64))
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(folds)).astype(np.int64)


def train(spec: TrainSpec, data_root: Path, staging: Path, report: Report,
          context: dict[str, Any], max_rows: int,
          before_save: Callable[[], None], max_bytes: int = 0) -> dict[str, Any]:
    """Cross-validates and fits on the cluster; saves the model into `staging`.

    XGBoost trains distributed (xgboost.dask); the scikit-learn algorithms fit each fold
    and the final fit as a Dask task on one worker each (dask_sklearn.py).

    Args:
        context: the daemon's job context: "dask_scheduler", and the gate's "policy" and
            "champion": compared in the challenger's folds (dask_gate.py): XGBoost's
            Dask folds, or the local engine's for the scikit-learn algorithms.
        max_bytes: the most bytes the dataset may hold uncompressed (0: no limit).

    Returns:
        The manifest fields, as worker.train's.
    """
    from distributed import Client

    scheduler = context["dask_scheduler"]
    started = time.perf_counter()
    found = resolve_files(data_root, spec.dataset.path)
    report("connecting", 0.02, f"connecting to the Dask scheduler at {scheduler}", {})
    # Closing the client (leaving the block, or this process dying) releases its futures.
    try:
        # The default client of this process: xgboost.dask looks it up (get_client()).
        client = Client(scheduler, timeout=_CONNECT_SECONDS)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise FailedPrecondition(f"cannot reach the Dask scheduler at {scheduler}: "
                                 f"{exc}") from None
    with client:
        members = _workers(client)
        try:
            if spec.algorithm not in DISTRIBUTED:
                return _train_sklearn(spec, found, staging, report, context, max_rows,
                                      max_bytes, before_save, client, scheduler, started)
            return _train(spec, found, staging, report, context, max_rows, before_save,
                          client, members, scheduler, started)
        except ModeldError:
            raise
        except Exception as exc:
            raise _cluster_fault(exc, client, members, scheduler,
                                 bool(context.get("dask_local")),
                                 spec.algorithm in DISTRIBUTED) from exc


def _cluster_fault(exc: Exception, client: Any, members: list[str], scheduler: str,
                   local: bool, xgboost: bool) -> Exception:
    """What a job that failed on the cluster reports: the scheduler or a worker that went
    away, if one did (Unavailable: training again can succeed); else `exc` itself.

    A worker that died mid-fit: xgboost.dask cannot go on without one of its ranks (the
    re-scheduled rank refuses another worker: "Resilience is not yet supported"), and the
    surviving ranks stay blocked in their collective call, each holding its worker's thread
    until XGBoost's communicator times out (30 minutes by default), so the next job would
    queue behind them. On the daemon's own cluster (`local`) the workers are restarted.
    Between fits Dask recomputes lost partitions, and nothing fails.
    """
    then = ("the daemon starts a new local cluster for the next job" if local
            else "once the scheduler is back")
    scheduler_gone = Unavailable(
        f"the Dask scheduler at {scheduler} went away during the job (its process "
        f"exited or the network failed): train again; {then} "
        f"(cause: {type(exc).__name__})")
    # Asked first, on a new connection: the client's own view may be stale (once it
    # answered with no workers at all rather than fail).
    if not _listening(scheduler):
        return scheduler_gone
    try:
        now = set(_workers(client))
    except Exception:  # whatever the client raises, the scheduler is gone
        return scheduler_gone
    gone = [w for w in members if w not in now]
    if not gone:
        return exc
    left = (f"Dask worker {', '.join(gone)} left the cluster during the job (killed or "
            f"crashed; {len(members)} workers at the start)")
    if not xgboost:  # Dask retried the lost worker's task elsewhere, and it failed there too
        return Unavailable(f"{left}: its task failed; train again "
                           f"(cause: {type(exc).__name__})")
    freed = ""
    # Only this job's ranks on workers that are still there can be blocked. None left: the
    # workers were restarted already (by another job at once, whose worker was lost), and
    # restarting them again would fail whichever job started on them since.
    if local and len(gone) < len(members):
        try:
            client.restart(timeout=_CONNECT_SECONDS)
            freed = ("; the local cluster's workers were restarted, freeing the ranks that "
                     "waited for it")
        except Exception as failed:
            freed = (f"; restarting the local cluster's workers failed ({type(failed).__name__}"
                     "): the next job may wait for the ranks still blocked")
    return Unavailable(
        f"{left}: XGBoost on Dask cannot finish a fit without one of its workers; train "
        f"again (cause: {type(exc).__name__}){freed}")


def _listening(scheduler: str, seconds: float = 10.0) -> bool:
    """Whether a TCP connection to the scheduler's address opens (True for an address that
    is not host:port over TCP: then only the client can tell)."""
    protocol, _, rest = scheduler.rpartition("://")
    host, _, port = rest.rpartition(":")
    if protocol not in ("", "tcp", "tls") or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except OSError:
        return False


def _workers(client: Any) -> list[str]:
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def _train(spec: TrainSpec, found: DatasetFiles, staging: Path, report: Report,
           context: dict[str, Any], max_rows: int, before_save: Callable[[], None],
           client: Any, members: list[str], scheduler: str,
           started: float) -> dict[str, Any]:
    """train's work once connected: the job on the cluster, then the artifacts."""
    workers = len(members)
    report("loading", 0.05, f"reading {spec.dataset.path} on {workers} Dask workers", {})
    digests = start_sha256(found, client)
    try:  # the computations that read the rows: the data's own errors surface here
        frame, dropped, columns, features, schema, sample_row = _load(spec, found, client)
        report("validating", 0.06, "checking the dataset on the cluster", {})
        frame, classes, rows, checked = _encode(spec, frame, features, client, max_rows,
                                                dropped)
    except ModeldError:
        raise
    except FileNotFoundError as exc:
        raise FailedPrecondition(
            f"dataset.path {quoted(spec.dataset.path)}: a Dask worker cannot find "
            f"{exc.filename or exc}: every worker must see the data root at the daemon's "
            "path") from None
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidArgument(
            f"dataset.path {quoted(spec.dataset.path)} could not be read with the column "
            f"types of its sample: {_first_line(exc)}") from None
    # The local engine's preprocessing (categoricals one-hot encoded) on each partition;
    # positional names: feature names such as 'char_freq_[' are refused by XGBoost, and
    # Predict hands the model a plain matrix, as for the local engine.
    validated = frame  # the rows with their own values: what the reference profile bins
    preprocess, width = dask_encode.fitted_preprocessor(spec, frame, schema, client)
    names = [f"f{i}" for i in range(width)]
    carried = {_Y: frame[_Y].dtype, _POS: frame[_POS].dtype}
    frame = frame.map_partitions(dask_encode.encode, preprocess, schema, names, list(carried),
                                 meta=dask_encode.meta(names, carried))
    # Read once into the workers' memory for the k + 1 fits; this also fixes the
    # partitions, which the optimizer could otherwise fuse differently for X and y.
    frame = client.persist(_with_folds(spec, frame))
    t_cv = time.perf_counter()
    metrics, confusion, folds, held = _cross_validate(spec, frame, names, classes, client,
                                                      report)
    cv_seconds = time.perf_counter() - t_cv
    key = dask_gate.fold_key(spec, dask_gate.fingerprint(frame, [*names, _Y, _POS], client),
                             rows, _library_versions())
    t_hashes = time.perf_counter()
    seen = _row_hashes(spec, found, validated, features, client)
    hashes_seconds = time.perf_counter() - t_hashes
    decision = dask_gate.decide(
        spec, context, classes, columns, metrics, held, key,
        _refit(frame, names, classes, client, report),
        rows=dask_gate.Rows(seen, dask_hashes.outputs_on_partitions(
            validated, seen.sizes, spec.task.value, client)),
        one_worker=dask_gate.refit_on_one_worker(
            validated, schema, classes, spec.seed,
            lambda: dask_sklearn.memory_bytes(found.files), client))
    report("final_fit", 0.88, f"fitting on all {rows} rows on the cluster", metrics)
    t_fit = time.perf_counter()
    model = _fit(spec, frame[names], frame[_Y], classes, client)
    fit_seconds = time.perf_counter() - t_fit
    partitions = frame.npartitions
    report("profiling", 0.93, "reference profile for drift monitoring on the cluster", metrics)
    t_profile = time.perf_counter()
    reference = {"rows": rows,
                 "features": dask_profile.feature_profiles(validated, schema, rows, spec.seed,
                                                           client),
                 "output": profile.output_profile(
                     spec.task.value, classes, held.proba,
                     held.pred if spec.task is Task.REGRESSION else None)}
    profile_seconds = time.perf_counter() - t_profile
    sha256 = finish_sha256(found, spec.dataset.path, digests, client)
    report("saving", 0.96, "writing artifacts", metrics)
    before_save()
    fmt = artifacts.save(artifacts.Fitted(preprocess, _plain(spec, model)), staging)
    stored_oof = oof.save(staging, key, held.pred, held.proba)
    seen.save(staging)
    return {
        "algorithm": spec.algorithm, "task": spec.task.value, "params": dict(spec.params),
        "cv_folds": spec.cv_folds, "seed": spec.seed, "format": fmt,
        "dataset": {"path": spec.dataset.path, "sha256": sha256, "rows": rows,
                    "rows_read": checked["rows_read"],
                    "columns": columns, "files": [f.name for f in found.files],
                    "selection": spec.dataset.to_json()},
        "validation": checked,
        "schema": schema.to_json(), "features": features, "classes": classes,
        "sample_row": sample_row, "metrics": metrics, "confusion_matrix": confusion,
        "gate": decision.to_json() if decision else None, "oof": stored_oof,
        "profile": reference,
        "state": "rejected" if decision is not None and not decision.passed else "available",
        "engine": {"name": "dask", "scheduler": scheduler, "workers": workers,
                   "partitions": partitions, "fold_sizes": folds,
                   "folds": dask_gate.FOLD_RULE},
        "timings": {"cv_seconds": cv_seconds, "final_fit_seconds": fit_seconds,
                    "profile_seconds": profile_seconds, "row_hashes_seconds": hashes_seconds,
                    "total_seconds": time.perf_counter() - started},
        "libraries": _library_versions(),
        "resources": _peak_memory(),
    }


def _train_sklearn(spec: TrainSpec, found: DatasetFiles, staging: Path, report: Report,
                   context: dict[str, Any], max_rows: int, max_bytes: int,
                   before_save: Callable[[], None], client: Any, scheduler: str,
                   started: float) -> dict[str, Any]:
    """A scikit-learn algorithm: its fits as Dask tasks (dask_sklearn.train), then the
    gate's thresholds and the artifacts, written here."""
    single = len(found.files) == 1 and not found.keys
    got = dask_sklearn.train(spec, found.files[0] if single else found, client, report,
                             max_rows, max_bytes)
    fitted = got["fitted"]
    metrics = got["metrics"]
    held = got["held"]
    decision = None
    # The local engine's row hashes, made on the worker holding the prepared rows.
    seen = dask_hashes.of_prepared(client, got["prepared"],
                                   spec.dataset.target or spec.dataset.eval_label)
    if held is not None:  # folds: the champion compared in them (dask_gate.py)
        decision = dask_gate.decide(
            spec, context, got["classes"], got["dataset"]["columns"], metrics, held,
            got["fold_key"], lambda recipe, manifest: dask_sklearn.refit(
                client, got["prepared"], spec, manifest, held.y),
            lambda manifest: "", rows=dask_gate.Rows(seen, dask_hashes.outputs_on_prepared(
                client, got["prepared"], spec.task.value)))
    elif "policy" in context:
        decision = _gate(spec, context, len(got["classes"]), metrics)
    del got["prepared"]  # the worker may free the prepared rows
    extra = {"anomaly": got["anomaly"]} if got["anomaly"] is not None else {}
    report("saving", 0.96, "writing artifacts", metrics)
    before_save()
    fmt = artifacts.save(fitted, staging)
    # Every held-out prediction, a detector's scores too (as the local engine stores them).
    stored_oof = oof.save(staging, got["fold_key"], *got["oof"])
    seen.save(staging)
    schema = FeatureSchema.from_json(got["schema"])
    return {
        "algorithm": spec.algorithm, "task": spec.task.value, "params": dict(spec.params),
        "cv_folds": spec.cv_folds, "seed": spec.seed, "format": fmt,
        "dataset": got["dataset"] | {"files": [f.name for f in found.files],
                                     "selection": spec.dataset.to_json()},
        "validation": got["validation"], "schema": got["schema"],
        "features": got["features"], "classes": got["classes"],
        "sample_row": got["sample_row"], "metrics": metrics,
        "confusion_matrix": got["confusion_matrix"], "profile": got["profile"],
        "gate": decision.to_json() if decision else None, "oof": stored_oof,
        "state": "rejected" if decision is not None and not decision.passed else "available",
        "feature_importance": {
            "estimator": importance.own_importance(fitted.preprocess, fitted.estimator, schema),
            "permutation": got["permutation"]},
        "engine": {"name": "dask", "scheduler": scheduler, "workers": len(got["workers"]),
                   "fits": "one Dask task per fold and for the final fit",
                   "fold_workers": got["fold_workers"], "final_worker": got["final_worker"],
                   "folds": "the local engine's (stratified k-fold, seeded)"},
        "timings": got["timings"] | {"total_seconds": time.perf_counter() - started},
        "libraries": _library_versions(), "resources": _peak_memory(), **extra,
    }


def _refit(frame: Any, names: list[str], classes: list[str], client: Any,
           report: Report) -> Callable[[TrainSpec, Any], dask_gate.Held]:
    """The gate's refit: a recipe cross-validated in the persisted frame's folds, by the
    challenger's own code path (_cross_validate)."""
    def refit(recipe: TrainSpec, manifest: Any) -> dask_gate.Held:
        def progress(phase: str, fraction: float, message: str,
                     metrics: dict[str, Any]) -> None:
            report("gate", 0.86, f"champion's recipe: {message}", {})

        return _cross_validate(recipe, frame, names, classes, client, progress)[3]

    return refit


def _row_hashes(spec: TrainSpec, found: DatasetFiles, validated: Any, features: list[str],
                client: Any) -> dask_hashes.Seen:
    """The rows' hashes as the local engine keeps them (dask_hashes.py); a CSV or JSON
    Lines dataset's integer columns, widened to float64 on Dask, hashed as int64."""
    target = spec.dataset.target
    integral = (dask_hashes.integral_columns(validated, [*features, target], client)
                if kind(found.files[0]) in ("csv", "jsonl") else [])
    return dask_hashes.collect(validated, features, target, spec.seed, spec.cv_folds,
                               integral, client)


def _gate(spec: TrainSpec, context: dict[str, Any], n_classes: int,
          metrics: dict[str, Any]) -> gate.Decision | None:
    """The policy's thresholds only: a job without folds (a detector without eval_label)
    has no held-out predictions to compare the champion on."""
    if "policy" not in context:
        return None
    champion = context.get("champion")
    return gate.decide(gate.Policy.from_json(context["policy"]), spec.task, n_classes, metrics,
                       (champion["version"], None, "engine dask does not compare with the "
                        "champion in this version") if champion else None)


def _load(spec: TrainSpec, found: DatasetFiles, client: Any
          ) -> tuple[Any, dict[str, Any], list[str], list[str], FeatureSchema, dict[str, Any]]:
    """The lazy frame (every column, then the row hash and position), the records the reader
    dropped (the report's malformed entry), the file's columns, the features, the schema
    and a sample row; only counts per file and column (CSV, JSON Lines), the column types
    and the first partition's first row are read here."""
    ds = spec.dataset
    # Dtypes decided over all files (dask_read.py); integer labels read as floats: see
    # _label_text.
    frame, dropped = read_frame(found, ds.path, client,
                                frozenset(c for c in (ds.target, ds.eval_label) if c))
    columns = [str(c) for c in frame.columns]
    for name, column in ([("dataset.target", ds.target)]
                         + [("dataset.features", c) for c in ds.features]
                         + [("dataset.filters.column", f["column"]) for f in ds.filters]):
        if column not in columns:
            raise InvalidArgument(f"{name} {column!r} is not a column of {ds.path!r} "
                                  f"(columns: {', '.join(columns)})")
    # As the local engine: eval_label is never a feature (it scores detectors only).
    features = list(ds.features) or [c for c in columns if c not in {ds.target, ds.eval_label}
                                      and c not in set(ds.drop_columns)]
    schema = FeatureSchema.infer(frame._meta, features, ds.target)
    # Every column stays until validation has profiled them all (as the local engine
    # does); each row's hash covers them all (duplicates are rows equal in every one).
    frame = frame.assign(**{dask_validation.HASH: frame.map_partitions(
        dask_validation.row_hashes, meta=(dask_validation.HASH, "u8"))})
    # The row's position in the whole dataset, before any row is dropped: its fold.
    frame = frame.assign(**{_POS: 1})
    frame[_POS] = frame[_POS].cumsum() - 1
    head = frame.head(1)
    sample_row = {c: json_value(head[c].iloc[0]) for c in features} if len(head) else {}
    return frame, dropped, columns, features, schema, sample_row


def _encode(spec: TrainSpec, frame: Any, features: list[str], client: Any,
            max_rows: int, malformed: dict[str, Any] | None = None
            ) -> tuple[Any, list[str], int, dict[str, Any]]:
    """Validates (dask_validation: filters, rows without a target dropped, the local
    engine's checks) and encodes the target (classes sorted, as np.unique does).

    Returns:
        The frame with the label column, the classes as text, the row count and the
        validation report.
    """
    target = spec.dataset.target
    frame, report, labels = dask_validation.validate(spec, frame, features, client,
                                                     max_rows, _label_text, malformed)
    classes: list[str] = []
    if spec.task is Task.CLASSIFICATION:
        classes = [_label_text(v) for v in labels]
        frame = frame.assign(**{_Y: frame[target].map_partitions(
            _encode_labels, labels, meta=(_Y, "i8"))})
    else:
        frame = frame.assign(**{_Y: frame[target].astype("f8")})
    # The target stays beside its encoding: the row hashes include its values.
    return frame, classes, report.rows_used, report.to_json()


def _with_folds(spec: TrainSpec, frame: Any) -> Any:
    seed, k = spec.seed, spec.cv_folds
    return frame.assign(__modeld_fold=frame[_POS].map_partitions(
        _folds_of, seed, k, meta=("__modeld_fold", "i8")))


def _folds_of(positions: Any, seed: int, k: int) -> Any:
    """One partition's folds, as a Series on its index (map_partitions wants a Series)."""
    import pandas as pd

    return pd.Series(fold_of(positions.to_numpy(), seed, k), index=positions.index)


def _encode_labels(column: Any, labels: np.ndarray) -> Any:
    """One partition's labels as their index in the sorted `labels`."""
    import pandas as pd

    return pd.Series(np.searchsorted(labels, column.to_numpy()), index=column.index)


def _cross_validate(spec: TrainSpec, frame: Any, features: list[str], classes: list[str],
                    client: Any, report: Report
                    ) -> tuple[dict[str, Any], dict[str, Any] | None, list[int],
                               dask_gate.Held]:
    """k fits on the cluster, each scored on its held-out rows (computed here: small).

    Returns:
        The metrics, the confusion matrix, the fold sizes and the held-out predictions
        fold after fold (what oof.npz stores and the gate scores).
    """
    k, n_classes = spec.cv_folds, len(classes)
    per_fold: list[dict[str, float]] = []
    sizes: list[int] = []
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    metrics: dict[str, Any] = {}
    ys: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    probas: list[np.ndarray] = []
    for i in range(k):
        report("cross_validation", 0.1 + 0.75 * i / k, f"cross validation fold {i + 1}/{k}",
               metrics)
        train, held = (frame[frame["__modeld_fold"] != i], frame[frame["__modeld_fold"] == i])
        model = _fit(spec, train[features], train[_Y], classes, client)
        if spec.task is Task.CLASSIFICATION:
            # Two computes: one mixing xgboost's graph and an expression warns (and
            # materializes both anyway); the held-out rows are persisted, so cheap.
            proba = client.compute(model.predict_proba(held[features]), sync=True)
            y = np.asarray(client.compute(held[_Y], sync=True))
            pred = np.asarray(proba).argmax(axis=1)
            scores = metric_fns.classification_metrics(y, pred, np.asarray(proba), n_classes)
            scores["ece"] = metric_fns.expected_calibration_error(y, np.asarray(proba))
            np.add.at(confusion, (y, pred), 1)
            probas.append(np.asarray(proba))
        else:
            got = client.compute(model.predict(held[features]), sync=True)
            y = np.asarray(client.compute(held[_Y], sync=True))
            pred = np.asarray(got)
            scores = metric_fns.regression_metrics(y, pred)
        per_fold.append(scores)
        sizes.append(len(y))
        ys.append(y)
        preds.append(pred)
        metrics = {name: s.to_json() for name, s in metric_fns.summarize(per_fold).items()}
    matrix = ({"labels": classes, "counts": confusion.ravel().tolist()}
              if spec.task is Task.CLASSIFICATION else None)
    held = dask_gate.Held(np.concatenate(ys), np.concatenate(preds),
                          np.concatenate(probas) if probas else None)
    return metrics, matrix, sizes, held


def _fit(spec: TrainSpec, x: Any, y: Any, classes: list[str], client: Any) -> Any:
    """A DaskXGBClassifier/Regressor with the local engine's parameters, fitted."""
    import xgboost.dask as dxgb

    local = build_estimator(get_algorithm(spec.algorithm, spec.task), spec.task, spec.params,
                            spec.seed, classes if spec.task is Task.CLASSIFICATION else None)
    cls = dxgb.DaskXGBClassifier if spec.task is Task.CLASSIFICATION else dxgb.DaskXGBRegressor
    params = {k: v for k, v in local.get_params().items() if k != "n_jobs"}
    model = cls(**params)
    model.client = client
    return model.fit(x, y, verbose=False)


def _plain(spec: TrainSpec, model: Any) -> Any:
    """The fitted model as a plain XGBClassifier/XGBRegressor (what serving loads)."""
    import xgboost

    model.get_booster().feature_names = None
    cls = xgboost.XGBClassifier if spec.task is Task.CLASSIFICATION else xgboost.XGBRegressor
    plain = cls()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_model(Path(tmp) / "model.ubj")
        plain.load_model(Path(tmp) / "model.ubj")
    return plain


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _label_text(value: Any) -> str:
    """A class label as the local engine writes it: 1, not the 1.0 a float column made."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _peak_memory() -> dict[str, float]:
    """Peak resident memory (MiB) of this job process: the held-out predictions and row
    hashes it collects, never the rows (the workers' memory is the cluster's)."""
    import resource

    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _library_versions() -> dict[str, str]:
    from importlib.metadata import version

    import pandas
    import sklearn
    import xgboost

    return {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pandas.__version__, "scikit-learn": sklearn.__version__,
            "xgboost": xgboost.__version__, "dask": version("dask"),
            "distributed": version("distributed")}
