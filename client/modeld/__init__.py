"""modeld client: train, version, serve and roll back tabular models on a modeld daemon.

    from modeld import Client

    with Client("127.0.0.1:50051") as client:
        job = client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost")
        print(job.wait().version)
        print(client.predict("spam", [{"word_freq_make": 0.1, ...}]).predictions)

Needs only grpcio and protobuf; pandas is optional, and the ``modelctl`` CLI
(``modeld.cli``) is imported only when it runs.
"""

from __future__ import annotations

from modeld._channel import TLSConfig
from modeld._predict import Explanation, Predictions
from modeld._retry import RetryPolicy
from modeld.client import DEFAULT_ADDRESS, Client
from modeld.errors import (
    AlreadyExists,
    Cancelled,
    ConnectionFailed,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ModeldError,
    ModelNotFound,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    UnknownError,
    from_rpc_error,
)
from modeld.jobs import JobHandle
from modeld.lifecycle import Alias, Policy, Schedule, Threshold
from modeld.options import RowFilter, TrainSpec, Validation
from modeld.status import DaemonStatus, ModelStatus, Status, StatusWarning
from modeld.types import (
    ConfusionMatrix,
    Job,
    JobState,
    LoadState,
    Metric,
    RollbackResult,
    Task,
    Version,
    VersionState,
    to_dict,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Alias",
    "AlreadyExists",
    "Cancelled",
    "Client",
    "ConfusionMatrix",
    "ConnectionFailed",
    "DaemonStatus",
    "DeadlineExceeded",
    "Explanation",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobHandle",
    "JobState",
    "LoadState",
    "Metric",
    "ModelNotFound",
    "ModelStatus",
    "ModeldError",
    "NotFound",
    "PermissionDenied",
    "Policy",
    "Predictions",
    "ResourceExhausted",
    "RetryPolicy",
    "RollbackResult",
    "RowFilter",
    "Schedule",
    "Status",
    "StatusWarning",
    "TLSConfig",
    "Task",
    "Threshold",
    "TrainSpec",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownError",
    "Validation",
    "Version",
    "VersionState",
    "from_rpc_error",
    "to_dict",
]
