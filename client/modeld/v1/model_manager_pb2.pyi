import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_CLASSIFICATION: _ClassVar[Task]
    TASK_REGRESSION: _ClassVar[Task]
    TASK_ANOMALY_DETECTION: _ClassVar[Task]

class Calibration(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALIBRATION_NONE: _ClassVar[Calibration]
    CALIBRATION_SIGMOID: _ClassVar[Calibration]
    CALIBRATION_ISOTONIC: _ClassVar[Calibration]
    CALIBRATION_AUTO: _ClassVar[Calibration]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class LoadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAD_STATE_UNSPECIFIED: _ClassVar[LoadState]
    LOAD_STATE_LOADING: _ClassVar[LoadState]
    LOAD_STATE_READY: _ClassVar[LoadState]
    LOAD_STATE_FAILED: _ClassVar[LoadState]
    LOAD_STATE_NO_ACTIVE_VERSION: _ClassVar[LoadState]
    LOAD_STATE_STALE: _ClassVar[LoadState]
    LOAD_STATE_DEGRADED: _ClassVar[LoadState]

class VersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATE_UNSPECIFIED: _ClassVar[VersionState]
    VERSION_STATE_ACTIVE: _ClassVar[VersionState]
    VERSION_STATE_INACTIVE: _ClassVar[VersionState]
    VERSION_STATE_REJECTED: _ClassVar[VersionState]
TASK_UNSPECIFIED: Task
TASK_CLASSIFICATION: Task
TASK_REGRESSION: Task
TASK_ANOMALY_DETECTION: Task
CALIBRATION_NONE: Calibration
CALIBRATION_SIGMOID: Calibration
CALIBRATION_ISOTONIC: Calibration
CALIBRATION_AUTO: Calibration
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
LOAD_STATE_UNSPECIFIED: LoadState
LOAD_STATE_LOADING: LoadState
LOAD_STATE_READY: LoadState
LOAD_STATE_FAILED: LoadState
LOAD_STATE_NO_ACTIVE_VERSION: LoadState
LOAD_STATE_STALE: LoadState
LOAD_STATE_DEGRADED: LoadState
VERSION_STATE_UNSPECIFIED: VersionState
VERSION_STATE_ACTIVE: VersionState
VERSION_STATE_INACTIVE: VersionState
VERSION_STATE_REJECTED: VersionState

class Dataset(_message.Message):
    __slots__ = ("path", "target", "eval_label", "features", "drop_columns", "filters")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EVAL_LABEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    DROP_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    path: str
    target: str
    eval_label: str
    features: _containers.RepeatedScalarFieldContainer[str]
    drop_columns: _containers.RepeatedScalarFieldContainer[str]
    filters: _containers.RepeatedCompositeFieldContainer[RowFilter]
    def __init__(self, path: _Optional[str] = ..., target: _Optional[str] = ..., eval_label: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., drop_columns: _Optional[_Iterable[str]] = ..., filters: _Optional[_Iterable[_Union[RowFilter, _Mapping]]] = ...) -> None: ...

class RowFilter(_message.Message):
    __slots__ = ("column", "range", "values", "dates")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DATES_FIELD_NUMBER: _ClassVar[int]
    column: str
    range: NumericRange
    values: ValueSet
    dates: DateRange
    def __init__(self, column: _Optional[str] = ..., range: _Optional[_Union[NumericRange, _Mapping]] = ..., values: _Optional[_Union[ValueSet, _Mapping]] = ..., dates: _Optional[_Union[DateRange, _Mapping]] = ...) -> None: ...

class NumericRange(_message.Message):
    __slots__ = ("min", "max")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class ValueSet(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class DateRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class ValidationOptions(_message.Message):
    __slots__ = ("drop_duplicates", "fail_on_missing_target", "min_rows", "max_malformed_fraction")
    DROP_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAIL_ON_MISSING_TARGET_FIELD_NUMBER: _ClassVar[int]
    MIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_MALFORMED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    drop_duplicates: bool
    fail_on_missing_target: bool
    min_rows: int
    max_malformed_fraction: float
    def __init__(self, drop_duplicates: _Optional[bool] = ..., fail_on_missing_target: _Optional[bool] = ..., min_rows: _Optional[int] = ..., max_malformed_fraction: _Optional[float] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("model", "dataset", "algorithm", "params", "cv_folds", "seed", "request_id", "task", "no_activate", "validation", "calibration", "engine")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CV_FOLDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NO_ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: Dataset
    algorithm: str
    params: _containers.ScalarMap[str, str]
    cv_folds: int
    seed: int
    request_id: str
    task: Task
    no_activate: bool
    validation: ValidationOptions
    calibration: Calibration
    engine: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[_Union[Dataset, _Mapping]] = ..., algorithm: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., cv_folds: _Optional[int] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., no_activate: _Optional[bool] = ..., validation: _Optional[_Union[ValidationOptions, _Mapping]] = ..., calibration: _Optional[_Union[Calibration, str]] = ..., engine: _Optional[str] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("mean", "std", "folds")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    FOLDS_FIELD_NUMBER: _ClassVar[int]
    mean: float
    std: float
    folds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, mean: _Optional[float] = ..., std: _Optional[float] = ..., folds: _Optional[_Iterable[float]] = ...) -> None: ...

class ConfusionMatrix(_message.Message):
    __slots__ = ("labels", "counts")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, labels: _Optional[_Iterable[str]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "model", "state", "version", "phase", "progress", "message", "error", "metrics", "request", "created_at", "started_at", "finished_at", "activated")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    state: JobState
    version: int
    phase: str
    progress: float
    message: str
    error: str
    metrics: _containers.MessageMap[str, MetricValue]
    request: TrainRequest
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    activated: bool
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., version: _Optional[int] = ..., phase: _Optional[str] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., metrics: _Optional[_Mapping[str, MetricValue]] = ..., request: _Optional[_Union[TrainRequest, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activated: _Optional[bool] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("model", "page_size", "page_token")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model: str
    page_size: int
    page_token: str
    def __init__(self, model: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class DaemonStatus(_message.Message):
    __slots__ = ("build_version", "uptime_seconds", "registry_root", "data_root", "jobs_running", "jobs_queued", "started_at")
    BUILD_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ROOT_FIELD_NUMBER: _ClassVar[int]
    DATA_ROOT_FIELD_NUMBER: _ClassVar[int]
    JOBS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    JOBS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    build_version: str
    uptime_seconds: float
    registry_root: str
    data_root: str
    jobs_running: int
    jobs_queued: int
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, build_version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., registry_root: _Optional[str] = ..., data_root: _Optional[str] = ..., jobs_running: _Optional[int] = ..., jobs_queued: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("model", "active_version", "loaded_version", "state", "last_error", "metrics", "latest_version", "version_count", "algorithm", "task", "last_reload_at", "last_reload_ms", "aliases", "schedule", "warnings", "drift_status")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOADED_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_MS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_STATUS_FIELD_NUMBER: _ClassVar[int]
    model: str
    active_version: int
    loaded_version: int
    state: LoadState
    last_error: str
    metrics: _containers.MessageMap[str, MetricValue]
    latest_version: int
    version_count: int
    algorithm: str
    task: Task
    last_reload_at: _timestamp_pb2.Timestamp
    last_reload_ms: float
    aliases: _containers.ScalarMap[str, int]
    schedule: Schedule
    warnings: _containers.RepeatedCompositeFieldContainer[StatusWarning]
    drift_status: str
    def __init__(self, model: _Optional[str] = ..., active_version: _Optional[int] = ..., loaded_version: _Optional[int] = ..., state: _Optional[_Union[LoadState, str]] = ..., last_error: _Optional[str] = ..., metrics: _Optional[_Mapping[str, MetricValue]] = ..., latest_version: _Optional[int] = ..., version_count: _Optional[int] = ..., algorithm: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., last_reload_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_reload_ms: _Optional[float] = ..., aliases: _Optional[_Mapping[str, int]] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[StatusWarning, _Mapping]]] = ..., drift_status: _Optional[str] = ...) -> None: ...

class StatusWarning(_message.Message):
    __slots__ = ("kind", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("daemon", "models")
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    daemon: DaemonStatus
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    def __init__(self, daemon: _Optional[_Union[DaemonStatus, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("model", "version", "state", "algorithm", "task", "params", "metrics", "created_at", "job_id", "dataset_path", "dataset_sha256", "rows", "features", "classes", "confusion_matrix", "training_seconds", "manifest_json", "aliases", "gate_summary")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_PATH_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    GATE_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    state: VersionState
    algorithm: str
    task: Task
    params: _containers.ScalarMap[str, str]
    metrics: _containers.MessageMap[str, MetricValue]
    created_at: _timestamp_pb2.Timestamp
    job_id: str
    dataset_path: str
    dataset_sha256: str
    rows: int
    features: _containers.RepeatedScalarFieldContainer[str]
    classes: _containers.RepeatedScalarFieldContainer[str]
    confusion_matrix: ConfusionMatrix
    training_seconds: float
    manifest_json: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    gate_summary: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[VersionState, str]] = ..., algorithm: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., params: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, MetricValue]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_id: _Optional[str] = ..., dataset_path: _Optional[str] = ..., dataset_sha256: _Optional[str] = ..., rows: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., classes: _Optional[_Iterable[str]] = ..., confusion_matrix: _Optional[_Union[ConfusionMatrix, _Mapping]] = ..., training_seconds: _Optional[float] = ..., manifest_json: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., gate_summary: _Optional[str] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("model", "page_size", "page_token", "state")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    page_size: int
    page_token: str
    state: VersionState
    def __init__(self, model: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[VersionState, str]] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token", "active_version")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    next_page_token: str
    active_version: int
    def __init__(self, versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., active_version: _Optional[int] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("model", "to_version", "reason", "expected_active_version", "dry_run")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    model: str
    to_version: int
    reason: str
    expected_active_version: int
    dry_run: bool
    def __init__(self, model: _Optional[str] = ..., to_version: _Optional[int] = ..., reason: _Optional[str] = ..., expected_active_version: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("model", "previous_version", "active_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    previous_version: int
    active_version: int
    def __init__(self, model: _Optional[str] = ..., previous_version: _Optional[int] = ..., active_version: _Optional[int] = ...) -> None: ...

class RecordRows(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class DenseRows(_message.Message):
    __slots__ = ("columns", "values")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("model", "version", "alias", "records", "dense", "ignore_extra_columns", "explain")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    IGNORE_EXTRA_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    alias: str
    records: RecordRows
    dense: DenseRows
    ignore_extra_columns: bool
    explain: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., records: _Optional[_Union[RecordRows, _Mapping]] = ..., dense: _Optional[_Union[DenseRows, _Mapping]] = ..., ignore_extra_columns: _Optional[bool] = ..., explain: _Optional[bool] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("class_label", "margin", "base_value", "contributions")
    class ContributionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CLASS_LABEL_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    BASE_VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    class_label: str
    margin: float
    base_value: float
    contributions: _containers.ScalarMap[str, float]
    def __init__(self, class_label: _Optional[str] = ..., margin: _Optional[float] = ..., base_value: _Optional[float] = ..., contributions: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model", "version", "task", "labels", "values", "classes", "probabilities", "anomaly_scores", "explanations")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORES_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    task: Task
    labels: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    classes: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    anomaly_scores: _containers.RepeatedScalarFieldContainer[float]
    explanations: _containers.RepeatedCompositeFieldContainer[Explanation]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., task: _Optional[_Union[Task, str]] = ..., labels: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ..., classes: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Iterable[float]] = ..., anomaly_scores: _Optional[_Iterable[float]] = ..., explanations: _Optional[_Iterable[_Union[Explanation, _Mapping]]] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("model", "version", "reason", "expected_active_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    reason: str
    expected_active_version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., expected_active_version: _Optional[int] = ...) -> None: ...

class Threshold(_message.Message):
    __slots__ = ("metric", "op", "value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    op: str
    value: float
    def __init__(self, metric: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("model", "primary_metric", "tolerance", "thresholds", "disabled", "max_age", "min_training_rows", "drift_psi_warn", "drift_psi_alert", "drift_js_alert", "drift_share_alert", "monitor_sample", "dask_above_bytes")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    MIN_TRAINING_ROWS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_PSI_WARN_FIELD_NUMBER: _ClassVar[int]
    DRIFT_PSI_ALERT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_JS_ALERT_FIELD_NUMBER: _ClassVar[int]
    DRIFT_SHARE_ALERT_FIELD_NUMBER: _ClassVar[int]
    MONITOR_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    DASK_ABOVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    model: str
    primary_metric: str
    tolerance: float
    thresholds: _containers.RepeatedCompositeFieldContainer[Threshold]
    disabled: bool
    max_age: _duration_pb2.Duration
    min_training_rows: int
    drift_psi_warn: float
    drift_psi_alert: float
    drift_js_alert: float
    drift_share_alert: float
    monitor_sample: float
    dask_above_bytes: int
    def __init__(self, model: _Optional[str] = ..., primary_metric: _Optional[str] = ..., tolerance: _Optional[float] = ..., thresholds: _Optional[_Iterable[_Union[Threshold, _Mapping]]] = ..., disabled: _Optional[bool] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_training_rows: _Optional[int] = ..., drift_psi_warn: _Optional[float] = ..., drift_psi_alert: _Optional[float] = ..., drift_js_alert: _Optional[float] = ..., drift_share_alert: _Optional[float] = ..., monitor_sample: _Optional[float] = ..., dask_above_bytes: _Optional[int] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class Alias(_message.Message):
    __slots__ = ("model", "alias", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    version: int
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("model", "alias", "version", "expected_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    version: int
    expected_version: int
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("model", "alias", "expected_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    alias: str
    expected_version: int
    def __init__(self, model: _Optional[str] = ..., alias: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("model", "cron", "interval_seconds", "min_new_rows", "min_interval_seconds", "train", "next_run_at", "last_run_at", "last_outcome", "on_drift")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_NEW_ROWS_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ON_DRIFT_FIELD_NUMBER: _ClassVar[int]
    model: str
    cron: str
    interval_seconds: float
    min_new_rows: int
    min_interval_seconds: float
    train: TrainRequest
    next_run_at: _timestamp_pb2.Timestamp
    last_run_at: _timestamp_pb2.Timestamp
    last_outcome: str
    on_drift: bool
    def __init__(self, model: _Optional[str] = ..., cron: _Optional[str] = ..., interval_seconds: _Optional[float] = ..., min_new_rows: _Optional[int] = ..., min_interval_seconds: _Optional[float] = ..., train: _Optional[_Union[TrainRequest, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_outcome: _Optional[str] = ..., on_drift: _Optional[bool] = ...) -> None: ...

class GetDriftRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("feature", "metric", "value", "warn_threshold", "alert_threshold", "status")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WARN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ALERT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    metric: str
    value: float
    warn_threshold: float
    alert_threshold: float
    status: str
    def __init__(self, feature: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., warn_threshold: _Optional[float] = ..., alert_threshold: _Optional[float] = ..., status: _Optional[str] = ...) -> None: ...

class DriftReport(_message.Message):
    __slots__ = ("model", "version", "replica", "status", "window_size", "window_rows", "sampled_rows", "dropped_rows", "windows", "computed_at", "features", "prediction", "drifted_share", "share_threshold", "sample_rate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ROWS_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_ROWS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_SHARE_FIELD_NUMBER: _ClassVar[int]
    SHARE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    replica: str
    status: str
    window_size: int
    window_rows: int
    sampled_rows: int
    dropped_rows: int
    windows: int
    computed_at: _timestamp_pb2.Timestamp
    features: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    prediction: FeatureDrift
    drifted_share: float
    share_threshold: float
    sample_rate: float
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., replica: _Optional[str] = ..., status: _Optional[str] = ..., window_size: _Optional[int] = ..., window_rows: _Optional[int] = ..., sampled_rows: _Optional[int] = ..., dropped_rows: _Optional[int] = ..., windows: _Optional[int] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., features: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., prediction: _Optional[_Union[FeatureDrift, _Mapping]] = ..., drifted_share: _Optional[float] = ..., share_threshold: _Optional[float] = ..., sample_rate: _Optional[float] = ...) -> None: ...

class SetScheduleRequest(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...
