"""Runs one training job inside a worker process.

The daemon forks workers from a forkserver that preloads this module, so the
heavy libraries below are imported once, before any job, and each job starts
warm. Everything a job does with data happens here, never in the daemon.
"""

from __future__ import annotations

import itertools
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import sklearn.calibration
import xgboost

from modeld_server import artifacts, fastpaths
from modeld_server.errors import FailedPrecondition, ModeldError, from_os_error
from modeld_server.monitoring import profile
from modeld_server.registry.fsio import hold_builder_lock
from modeld_server.registry.manifest import Manifest
from modeld_server.training import gate, importance, oof
from modeld_server.training import metrics as metric_fns
from modeld_server.training.champion import Kept, read_champion
from modeld_server.training.datasets import dataset_files
from modeld_server.training.estimators import (
    Algorithm,
    build_estimator,
    build_preprocessor,
    fold_workers,
    get_algorithm,
)
from modeld_server.training.evaluate import CVResult, Template, calibrate, cross_validate
from modeld_server.training.messages import Failure, Outcome, Progress, Result
from modeld_server.training.parallel import Background, SideWork, available_cpus
from modeld_server.training.prepare import Prepared, prepare
from modeld_server.types import Task, TrainSpec

Report = Callable[[str, float, str, dict[str, Any]], None]
"""report(phase, progress 0..1, message, partial metrics as JSON)."""


def run(spec_json: dict[str, Any], data_root: str, staging: str, conn: Any,
        max_rows: int = 10_000_000, context: dict[str, Any] | None = None,
        cpus: int = 0, memory_mb: int = 0, max_bytes: int = 0, fast_paths: bool = True) -> None:
    """Process entry point: trains, saves into `staging`, and sends the outcome on `conn`.
    `fast_paths` is the daemon's --fast-paths, for this process (see fastpaths.py)."""
    fastpaths.set_enabled(fast_paths)
    def report(phase: str, progress: float, message: str, partial: dict[str, Any]) -> None:
        conn.send(Progress(phase, progress, message, partial))

    outcome: Outcome
    try:
        outcome = Result(train(TrainSpec.from_json(spec_json), Path(data_root), Path(staging),
                               report, max_rows, context or {}, cpus, memory_mb, max_bytes,
                               before_save=lambda: _join_builders(Path(staging))))
    except (BrokenPipeError, ConnectionResetError):
        return  # the daemon is gone or cancelled us: nobody to tell
    except ModeldError as exc:
        outcome = Failure(type(exc).__name__, exc.message)
    except MemoryError:
        outcome = Failure("ResourceExhausted", "training ran out of memory")
    except Exception as exc:  # any library failure fails this job, with its reason
        known = from_os_error(exc, staging) if isinstance(exc, OSError) else None
        outcome = (Failure(type(known).__name__, known.message) if known is not None else
                   Failure("Internal", "".join(traceback.format_exception_only(exc)).strip()))
    try:
        conn.send(outcome)
        conn.close()
    except OSError:
        pass  # the daemon went away first


def train(spec: TrainSpec, data_root: Path, staging: Path, report: Report,
          max_rows: int = 10_000_000, context: dict[str, Any] | None = None,
          cpus: int = 0, memory_mb: int = 0, max_bytes: int = 0,
          before_save: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Validates the dataset, cross-validates, gates, fits on all rows and saves the artifacts.

    Args:
        context: {"policy": policy JSON, "champion": {"registry", "model", "version"}} from
            the daemon when the model has a quality gate.
        cpus: processes a single-threaded estimator's fits may use at once (0: every CPU
            this process may run on; 1: one fit at a time).
        memory_mb: the job's memory limit (0: none); fewer fits run at once when their
            copies of the data would not fit in half of it.
        max_bytes: the most bytes the dataset may hold uncompressed (0: no limit).
        before_save: called before the first write into `staging` (see _join_builders).

    Returns:
        The manifest fields the training produced (metrics, schema, reports...).
    """
    context = context or {}
    if spec.engine == "dask":  # imported only here: the forkserver does not preload dask
        from modeld_server.training import dask_engine

        return dask_engine.train(spec, data_root, staging, report, context, max_rows,
                                 before_save, max_bytes)
    started = time.perf_counter()
    report("loading", 0.02, f"reading {spec.dataset.path}", {})
    data = prepare(spec, dataset_files(data_root, spec.dataset.path), max_rows, max_bytes)
    prepare_seconds = time.perf_counter() - started
    report("validating", 0.08, f"{data.dataset['rows']} usable rows of "
           f"{data.report.rows_read}", {})
    algorithm = get_algorithm(spec.algorithm, spec.task)
    cpus = cpus or available_cpus()
    workers = _within_memory(fold_workers(algorithm, spec.params, cpus), data, memory_mb)
    t_cv = time.perf_counter()
    # The features' reference profiles are computed beside the folds' metrics, in pieces.
    features = SideWork(_profile_pieces(data, spec.cv_folds))
    template, cv, extra = _evaluate(spec, _template(spec, algorithm, data), data, report, workers,
                                    features)
    cv_seconds = time.perf_counter() - t_cv
    # A challenger that threads itself (OpenMP) leaves threads that a fork would not carry
    # over in a usable state: then the champion's refit stays in this process too.
    gate_cpus = cpus if algorithm.single_threaded else 1
    decision = _gate(spec, data, cv, context, gate_cpus) if "policy" in context else None
    fitted, fit_seconds = _final_fit(template, cv, data, report)
    if spec.task is Task.ANOMALY_DETECTION:
        extra.update(_anomaly_facts(fitted, data.x))
    t_profile = time.perf_counter()
    # A profile made from the fitted model's answers is made first; one made from the
    # held-out predictions beside the saving (which reads the model).
    feature_profiles = {name: p for piece in features.finish() for name, p in piece.items()}
    extra["profile"] = (_reference_profile(spec, data, cv, fitted, feature_profiles)
                        if _profile_asks_model(spec, cv) else None)
    extra["feature_importance"] = {
        "estimator": importance.own_importance(fitted.preprocess, fitted.estimator,
                                               data.schema),
        "permutation": cv.permutation}
    profile_seconds = time.perf_counter() - t_profile

    report("saving", 0.96, "writing artifacts", cv.metrics)
    before_save()
    t_save = time.perf_counter()
    saving = Background(lambda: _save(spec, data, cv, fitted, staging))
    beside = 0.0
    try:
        if extra["profile"] is None:
            extra["profile"] = _reference_profile(spec, data, cv, fitted, feature_profiles)
            beside = time.perf_counter() - t_save
    finally:
        saving.wait()
    fmt, stored_oof = saving.result()
    profile_seconds += beside
    save_seconds = time.perf_counter() - t_save - beside  # the parts still add up
    return {
        "algorithm": spec.algorithm, "task": spec.task.value, "params": dict(spec.params),
        "cv_folds": spec.cv_folds, "seed": spec.seed, "format": fmt,
        "dataset": data.dataset | {"selection": spec.dataset.to_json()},
        "validation": data.report.to_json(),
        "schema": data.schema.to_json(), "features": data.features, "classes": data.classes,
        "sample_row": data.sample_row, "metrics": cv.metrics,
        "confusion_matrix": cv.confusion_matrix,
        "gate": decision.to_json() if decision else None, "oof": stored_oof,
        "state": "rejected" if decision is not None and not decision.passed else "available",
        **extra,
        # With the final fit among the folds, its time is inside cv_seconds and
        # final_fit_alongside holds its own duration.
        "timings": {"prepare_seconds": prepare_seconds, "cv_seconds": cv_seconds,
                    "final_fit_seconds": fit_seconds, "final_fit_alongside": cv.final_seconds,
                    "save_seconds": save_seconds, "profile_seconds": profile_seconds,
                    "fit_processes": cv.processes,
                    "total_seconds": time.perf_counter() - started},
        "libraries": _library_versions(),
        "resources": _peak_memory(),
    }


def _save(spec: TrainSpec, data: Prepared, cv: CVResult, fitted: artifacts.Fitted,
          staging: Path) -> tuple[str, dict[str, Any] | None]:
    """Writes the model, the row hashes and the out-of-fold predictions into `staging`;
    returns the model's format and the manifest's record of the predictions.

    Runs in a thread beside the rest of the reference profile (parallel.Background), and
    the row hashes in one more: they spend their time in C code without the GIL
    (compressing, hashing, NumPy), and none changes what another reads.
    """
    hashes = Background(lambda: gate.save_row_hashes(
        staging, data.frame, data.features, spec.dataset.target or spec.dataset.eval_label))
    try:
        fmt = artifacts.save(fitted, staging)
        stored = oof.save(staging, _fold_key(spec, data), cv.oof_pred, cv.oof_proba)
    finally:
        hashes.wait()
    hashes.result()
    return fmt, stored


def _join_builders(staging: Path) -> None:
    """Shares the staging folder's builder lock until this process exits, before writing.

    A daemon restarted after a crash sweeps staging folders whose lock is free; one that
    this worker (outliving the daemon that started it) writes into must not be swept
    under it. Taken only now, after every fit process has ended: a fit process forked
    while it was held would hold it too, sparing the folder for as long as it ran.

    Raises:
        FailedPrecondition: the folder was swept already: nothing may be written there.
    """
    if hold_builder_lock(staging.with_name(f"{staging.name}.lock")) is None:
        raise FailedPrecondition(f"staging folder {staging} was swept: the daemon that "
                                 "started this job is gone")


_COPIES_PER_FIT = 3
"""Copies of the data one fit process makes: its training rows, them preprocessed, and the
estimator's own (float64 or Fortran-ordered) copy."""


def _within_memory(workers: int, data: Prepared, memory_mb: int) -> int:
    """`workers`, fewer if their copies of the data would pass half the memory limit."""
    if not memory_mb:
        return workers
    per_fit = _COPIES_PER_FIT * max(data.x.nbytes, 1)
    return max(1, min(workers, (memory_mb * 1024 * 1024 // 2) // per_fit))


def _template(spec: TrainSpec, algorithm: Algorithm, data: Prepared) -> Template:
    n = len(data.schema.numeric)
    return Template(
        build_preprocessor(algorithm, list(range(n)), list(range(n, len(data.schema.columns)))),
        build_estimator(algorithm, spec.task, spec.params, spec.seed,
                        data.classes if spec.task is Task.CLASSIFICATION else None))


def _evaluate(spec: TrainSpec, template: Template, data: Prepared, report: Report,
              workers: int, side: SideWork[Any] | None = None
              ) -> tuple[Template, CVResult, dict[str, Any]]:
    """Cross-validates (then calibration, if asked); returns the template to deploy, its
    cross-validation, and the manifest's calibration report. `side`: work to do beside
    the folds' metrics (evaluate.cross_validate).

    With fits side by side, the final fit goes with the folds, unless calibration may
    still change what the final fit is.
    """
    calibrating = spec.calibration != "none" and spec.task is Task.CLASSIFICATION
    cv = cross_validate(spec, template, data, _fold_progress(report, "cross_validation", spec),
                        workers, fit_final=workers > 1 and not calibrating, importance=True,
                        side=side)
    if not calibrating:
        return template, cv, {}
    permutation = cv.permutation  # of the uncalibrated model: calibration keeps the ranking
    template, cv, calibration = calibrate(
        spec, template, data, cv, _fold_progress(report, "calibration", spec), workers)
    cv.permutation = cv.permutation or permutation
    return template, cv, {"calibration": calibration}


def _final_fit(template: Template, cv: CVResult, data: Prepared,
               report: Report) -> tuple[artifacts.Fitted, float]:
    """The fit on all rows (done already if it ran beside the folds) and its seconds here."""
    if cv.final is not None:
        return cv.final, 0.0
    report("final_fit", 0.88, f"fitting on all {len(data.x)} rows", cv.metrics)
    started = time.perf_counter()
    fitted = template.fit(data.x, data.y)
    return fitted, time.perf_counter() - started


def _fold_progress(report: Report, phase: str, spec: TrainSpec) -> Any:
    k = spec.cv_folds

    def progress(i: int, partial: dict[str, Any]) -> None:
        report(phase, 0.1 + 0.75 * i / k, f"{phase.replace('_', ' ')} fold {i + 1}/{k}", partial)

    return progress


def _gate(spec: TrainSpec, data: Prepared, cv: CVResult,
          context: dict[str, Any], cpus: int) -> gate.Decision:
    """Compares challenger and champion on the same unseen rows and applies the policy."""
    policy = gate.Policy.from_json(context["policy"])
    champion = None
    note = ""
    if context.get("champion"):
        info = context["champion"]
        manifest, folder, kept, rows_why = read_champion(info)
        why = gate.not_comparable(manifest, data.frame, spec.task, data.classes)
        comparison = None if why else _compare(spec, data, cv, folder, manifest, kept, cpus)
        if comparison is not None and kept is None:
            note = (f"champion v{info['version']}'s row hashes not used ({rows_why}): "
                    "rows it never saw and changed labels not looked for")
        champion = (info["version"], comparison, why)
    decision = gate.decide(policy, spec.task, len(data.classes), cv.metrics, champion)
    if note:
        decision.reasons.append(note)
    return decision


def _compare(spec: TrainSpec, data: Prepared, cv: CVResult, folder: Path,
             manifest: Manifest, kept: Kept | None, cpus: int) -> gate.Comparison | None:
    if cv.oof_pred is None:
        return None
    found = None if kept is None else gate.overlap(*kept, manifest, data.frame)
    k = len(data.classes)
    if found is not None and found.unseen.sum() >= gate.MIN_UNSEEN:
        rows = np.flatnonzero(found.unseen)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        challenger = gate.pooled_metrics(spec.task, pick(data.y), cv.oof_pred[rows],
                                         pick(cv.oof_proba), k, pick(data.eval_label))
        champion = gate.score_artifact(folder, manifest, data.frame.iloc[rows], spec.task,
                                       data.classes, pick(data.y), pick(data.eval_label))
        return gate.Comparison(champion, challenger, len(rows), "rows the champion never saw")
    challenger = gate.pooled_metrics(spec.task, data.y, cv.oof_pred, cv.oof_proba, k,
                                     data.eval_label)
    if found is not None and found.relabeled > gate.LABEL_DRIFT:
        champion = gate.score_artifact(folder, manifest, data.frame, spec.task, data.classes,
                                       data.y, data.eval_label)
        return gate.Comparison(champion, challenger, len(data.x),
                               f"labels changed on {found.relabeled:.0%} of the champion's "
                               "rows: the deployed champion scored on all rows")
    # Same data: the champion's recipe in the challenger's folds, stored or refitted.
    stored, why_not = oof.reusable(folder, manifest, _fold_key(spec, data))
    if stored is not None:
        return gate.Comparison(
            gate.pooled_metrics(spec.task, data.y, *stored, k, data.eval_label), challenger,
            len(data.x), "champion's out-of-fold predictions from its own training, in the "
            "same folds (no refit)")
    refit_pred, refit_proba = _refit_champion(spec, data, manifest, cpus)
    return gate.Comparison(
        gate.pooled_metrics(spec.task, data.y, refit_pred, refit_proba, k, data.eval_label),
        challenger, len(data.x), "champion's recipe refitted in the same folds "
        f"(stored predictions not reusable: {why_not})")


def _refit_champion(spec: TrainSpec, data: Prepared, manifest: Manifest,
                    cpus: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The champion's recipe cross-validated in the challenger's folds; its held-out
    predictions as they would have been stored (oof.as_stored)."""
    recipe = TrainSpec(model=spec.model, dataset=spec.dataset, algorithm=manifest.algorithm,
                       task=spec.task, params=dict(manifest.params), cv_folds=spec.cv_folds,
                       seed=spec.seed if manifest.seed is None else manifest.seed)
    algorithm = get_algorithm(recipe.algorithm, recipe.task)
    template = _template(recipe, algorithm, data).with_calibration(
        (manifest.calibration or {}).get("method", "none"))
    refit = cross_validate(spec, template, data, lambda i, partial: None,
                           fold_workers(algorithm, recipe.params, cpus))
    assert refit.oof_pred is not None
    return oof.as_stored(refit.oof_pred, refit.oof_proba)


def _fold_key(spec: TrainSpec, data: Prepared) -> dict[str, Any]:
    return oof.fold_key(spec, data.dataset["sha256"], len(data.x), _library_versions())


def _profile_asks_model(spec: TrainSpec, cv: CVResult) -> bool:
    """Whether _reference_profile predicts with the fitted model."""
    if spec.task is Task.CLASSIFICATION:
        return cv.oof_proba is None
    return spec.task is Task.ANOMALY_DETECTION or cv.oof_pred is None


def _profile_pieces(data: Prepared, pieces: int
                    ) -> list[Callable[[], dict[str, dict[str, Any]]]]:
    """profile.feature_profiles of every feature, in `pieces` runs of neighbouring columns
    (numeric first, as in the matrix); merged in order they are the whole of it."""
    schema, x = data.schema, data.x
    n, width = len(schema.numeric), len(schema.numeric) + len(schema.categorical)
    bounds = [round(i * width / max(pieces, 1)) for i in range(max(pieces, 1) + 1)]

    def piece(a: int, b: int) -> Callable[[], dict[str, dict[str, Any]]]:
        numeric, categorical = schema.numeric[a:min(b, n)], schema.categorical[
            max(a, n) - n:max(b, n) - n]
        return lambda: {**profile.feature_profiles(numeric, [], x[:, a:min(b, n)]),
                        **profile.feature_profiles([], categorical, x[:, max(a, n):max(b, n)])}

    return [piece(a, b) for a, b in itertools.pairwise(bounds)]


def _reference_profile(spec: TrainSpec, data: Prepared, cv: CVResult,
                       fitted: artifacts.Fitted,
                       features: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What drift monitoring compares live traffic with (monitoring/profile.py): every
    feature of the training rows (`features`, when computed already), and the model's
    output on them. The output is the cross-validated (held-out) one where there is one,
    closer to what unseen rows get than the final fit's answers on the rows it learned."""
    schema = data.schema
    values: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    if spec.task is Task.CLASSIFICATION:
        probabilities = cv.oof_proba
        if probabilities is None:
            probabilities = fitted.estimator.predict_proba(fitted.preprocess.transform(data.x))
    elif spec.task is Task.REGRESSION:
        values = cv.oof_pred
        if values is None:
            values = fitted.estimator.predict(fitted.preprocess.transform(data.x))
    else:
        values = -fitted.estimator.score_samples(fitted.preprocess.transform(data.x))
    classes = [str(c) for c in data.classes]
    return {"rows": len(data.x),
            "features": (features if features is not None else
                         profile.feature_profiles(schema.numeric, schema.categorical, data.x)),
            "output": profile.output_profile(spec.task.value, classes, probabilities, values)}


def _anomaly_facts(fitted: artifacts.Fitted, x: np.ndarray) -> dict[str, Any]:
    est = fitted.estimator
    scores = -est.score_samples(fitted.preprocess.transform(x))
    threshold = float(-est.offset_)
    return {"anomaly": {
        "contamination": est.contamination,
        "threshold": threshold,
        "fraction_flagged": float(np.mean(scores > threshold)),
        "score_distribution": metric_fns.score_distribution(scores),
    }}


def _peak_memory() -> dict[str, float]:
    """Peak resident memory (MiB, as getrusage keeps it) of this job process and of the
    largest fit process it waited for (0 when every fit ran here)."""
    import resource

    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_fit_process_rss_mib":
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
            "xgboost": xgboost.__version__}
