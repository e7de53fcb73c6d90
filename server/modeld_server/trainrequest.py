"""Train's checks before a job is queued: a TrainInput becomes a TrainSpec or a domain error.

Train and SetSchedule both call validate_train (through ModelService), so a schedule's
request is refused exactly as a Train with the same fields would be; schedule_of makes
the schedule around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modeld_server.config import Settings
from modeld_server.errors import InvalidArgument, ResourceExhausted, quoted
from modeld_server.lifecycle import Lifecycle
from modeld_server.registry.layout import validate_model_name
from modeld_server.training import multifile
from modeld_server.training.cluster import ENGINES, DaskCluster, auto_engine, check_dask_request
from modeld_server.training.datasets import resolve_files
from modeld_server.training.estimators import check_params, get_algorithm, known_algorithm
from modeld_server.training.params import bounded_for_check, class_weight_by_index, parse_param
from modeld_server.training.sample import infer_task, target_labels
from modeld_server.training.scheduler import ScheduleSpec
from modeld_server.training.selection import check_selection, check_validation_options
from modeld_server.types import DatasetSpec, Task, TrainInput, TrainSpec

MAX_SEED = 2**32 - 1


def validate_train(request: TrainInput, *, settings: Settings, dask: DaskCluster,
                   lifecycle: Lifecycle) -> TrainSpec:
    """Every check Train makes before queueing; returns the job's spec."""
    model = validate_model_name(request.model)
    if not request.algorithm:
        raise InvalidArgument("algorithm is required")
    known_algorithm(request.algorithm)  # before the target and task that depend on it
    engine = _check_engine(request, dask)
    spec_dataset = request.dataset
    found = resolve_files(settings.data_root, spec_dataset.path)
    files, path = found.files, found.files[0]  # the first file's sample stands for all
    size = sum(f.stat().st_size for f in files)
    if size > settings.max_dataset_bytes:
        raise ResourceExhausted(f"dataset.path {quoted(spec_dataset.path)} has {size} "
                                f"bytes, more than max_dataset_bytes="
                                f"{settings.max_dataset_bytes}")
    if engine == "auto":
        above = lifecycle.get_policy(model, must_exist=False).dask_above_bytes
        engine = auto_engine(request, size, above, dask.configured)
    check_selection(spec_dataset, multifile.columns(
        found if found.keys or len(files) > 1 else path, spec_dataset.path))
    task, sampled = (request.task, False) if request.task else _infer_task(request, path)
    if task is not Task.ANOMALY_DETECTION and not spec_dataset.target:
        raise InvalidArgument(f"dataset.target is required for {task.value}")
    folds = request.cv_folds or 5
    if not 2 <= folds <= 20:
        raise InvalidArgument(f"cv_folds must be between 2 and 20, got {request.cv_folds}")
    seed = 42 if request.seed is None else request.seed
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgument(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    if len(request.request_id) > 128:
        raise InvalidArgument("request_id is longer than 128 characters")
    algorithm = get_algorithm(request.algorithm, task)
    params = dict(request.params)
    if params:  # the library's defaults need no check (for XGBoost, a fit of 15 ms)
        check_params(algorithm, task, bounded_for_check(algorithm.name, params), seed)
        _check_class_weight(params, path, spec_dataset)
    if request.calibration != "none" and task is not Task.CLASSIFICATION:
        raise InvalidArgument(f"calibration {request.calibration} needs a classifier; this "
                              f"is {task.value}")
    return TrainSpec(model=model, dataset=spec_dataset, algorithm=request.algorithm,
                     task=task, params=params, cv_folds=folds, seed=seed,
                     request_id=request.request_id, activate=request.activate,
                     validation=check_validation_options(dict(request.validation)),
                     calibration=request.calibration, task_sampled=sampled, engine=engine)


def schedule_of(spec: TrainSpec, *, cron: str, interval: float, min_new_rows: int,
                min_interval: float, on_drift: bool) -> ScheduleSpec:
    """The schedule that runs `spec` (validate_train's, for the schedule's model); every run
    is a new job, so the spec carries no request_id.

    Raises:
        InvalidArgument: a request_id, or a schedule ScheduleSpec.validated refuses.
    """
    if spec.request_id:
        raise InvalidArgument("schedule.train.request_id must be empty: every run is new")
    return ScheduleSpec(model=spec.model, train=spec.to_json(), dataset_path=spec.dataset.path,
                        cron=cron, interval_seconds=interval, min_new_rows=min_new_rows,
                        min_interval_seconds=min_interval, on_drift=on_drift).validated()


def _check_engine(request: TrainInput, dask: DaskCluster) -> str:
    """The engine; for dask, refuses what the Dask path does not do in this version.

    Raises:
        InvalidArgument: an unknown engine.
        FailedPrecondition: engine dask without a cluster, or with what it cannot do.
    """
    engine = request.engine or "local"
    if engine not in ENGINES:
        raise InvalidArgument(f"engine {quoted(engine)} is not one of: local, dask, auto")
    if engine in ("local", "auto"):  # auto: decided once the dataset's size is known
        return engine
    dask.require()
    check_dask_request(request)
    return engine


def _infer_task(request: TrainInput, path: Path) -> tuple[Task, bool]:
    """The task, and whether it came from a sample of the target column that was not
    all of it (the worker then checks the whole column agrees)."""
    by_algorithm = {"logistic_regression": Task.CLASSIFICATION, "ridge": Task.REGRESSION,
                    "isolation_forest": Task.ANOMALY_DETECTION}
    if request.algorithm in by_algorithm:
        return by_algorithm[request.algorithm], False
    if not request.dataset.target:
        raise InvalidArgument(f"dataset.target is required for algorithm "
                              f"{quoted(request.algorithm)}")
    task, whole = infer_task(path, request.dataset.target, request.dataset.path)
    return Task(task), not whole


def _check_class_weight(params: Mapping[str, str], path: Path, dataset: DatasetSpec) -> None:
    """A class_weight object names classes of the target, when the bounded sample holds
    the whole column (else the job checks, with every row)."""
    weights = parse_param(params["class_weight"]) if "class_weight" in params else None
    if isinstance(weights, dict) and dataset.target:
        labels = target_labels(path, dataset.target, dataset.path)
        if labels is not None:
            class_weight_by_index(weights, labels)
