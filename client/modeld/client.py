"""Client: one typed method per ModelManager RPC, a deadline on every call, errors mapped.

Reads (GetStatus, ListVersions, GetVersion, GetJob, ListJobs) and Train retry
on UNAVAILABLE under the call's deadline: reads change nothing, and Train
carries a request_id, so the daemon answers a repeat with the job it already
made. Rollback, CancelJob, Predict and Reload are never retried: Rollback is
made safe by ``expected_active_version`` instead, which the caller chooses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from modeld._channel import TLSConfig
from modeld._predict import Predictions, Rows, encode_rows
from modeld._retry import RetryPolicy
from modeld._transport import Transport
from modeld.errors import NotFound
from modeld.jobs import JobHandle
from modeld.types import Job, ModelStatus, RollbackResult, Status, Task, Version, VersionState
from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_ADDRESS", "Client"]

DEFAULT_ADDRESS = "127.0.0.1:50051"


class Client:
    """A connection to a modeld daemon. Thread-safe; use it as a context manager.

    Args:
        address: host:port of the daemon.
        token: Sent as ``authorization: Bearer <token>`` on every call.
        tls: A TLSConfig (CA and optional client pair), True for TLS with the
            system's roots, None for plaintext.
        timeout: The default deadline of each call in seconds, retries included;
            every method takes ``timeout=`` to override it.
        retry: The backoff of retried calls; None turns retries off.
        options: Extra gRPC channel options.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, token: str | None = None,
                 tls: TLSConfig | bool | None = None, timeout: float = 30.0, *,
                 retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen, shared safely)
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        self._t = Transport(address, token, tls, timeout, retry, options)

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._t.close()

    @property
    def address(self) -> str:
        """The daemon's host:port."""
        return self._t.address

    @property
    def timeout(self) -> float:
        """The default deadline of each call, in seconds."""
        return self._t.timeout

    @property
    def retry(self) -> RetryPolicy | None:
        """The backoff of retried calls; None when retries are off."""
        return self._t.retry

    @property
    def stub(self) -> pb_grpc.ModelManagerStub:
        """The raw generated stub, for what the typed methods do not cover."""
        return self._t.stub

    # -- training jobs ---------------------------------------------------------------------

    def train(self, model: str, data: str, target: str = "", *, algorithm: str,
              params: Mapping[str, object] | None = None, folds: int = 0,
              seed: int | None = None, task: Task | str | None = None, eval_label: str = "",
              activate: bool = True, request_id: str | None = None,
              timeout: float | None = None) -> JobHandle:
        """Queues a training job and returns at once.

        Args:
            model: The model's name; a new name creates the model.
            data: Dataset path relative to the daemon's data root (CSV or Parquet).
            target: The label column; empty for anomaly detection.
            algorithm: xgboost, random_forest, hist_gradient_boosting,
                logistic_regression, ridge or isolation_forest.
            params: Hyperparameters; non-strings are sent as JSON literals (6 -> "6").
            folds: Cross-validation folds, 2..20; 0 for the daemon's default (5).
            seed: Fold shuffling and estimator seed; None for the daemon's default.
            task: classification, regression or anomaly_detection; None to infer.
            eval_label: Anomaly detection only: a label column used for scoring.
            activate: False publishes the version without making it active.
            request_id: Makes the call idempotent; a random one is generated if None.
            timeout: This call's deadline in seconds.

        Returns:
            A handle on the queued job: ``.wait()``, ``.cancel()``, ``.refresh()``.
        """
        request = pb.TrainRequest(
            model=model, dataset=pb.Dataset(path=data, target=target, eval_label=eval_label),
            algorithm=algorithm, params={k: _param_text(v) for k, v in (params or {}).items()},
            cv_folds=folds, request_id=request_id or uuid.uuid4().hex,
            task=_task_name(task), no_activate=not activate)
        if seed is not None:
            request.seed = seed
        # Safe to retry: the same request_id makes the daemon return the job it already queued.
        job = Job.from_pb(self._t.unary("Train", request, timeout, retry=True))
        return JobHandle(self, job.id, job)

    def job(self, job_id: str) -> JobHandle:
        """A handle on an existing job, without calling the daemon.

        Args:
            job_id: The job's id.

        Returns:
            The handle.
        """
        return JobHandle(self, job_id)

    def get_job(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Reads one job.

        Args:
            job_id: The job's id.
            timeout: This call's deadline in seconds.

        Returns:
            The job as it is now.
        """
        return Job.from_pb(self._t.unary("GetJob", pb.GetJobRequest(job_id=job_id), timeout,
                                       retry=True))

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> Job:
        """Cancels a queued or running job (FailedPrecondition if it already ended).

        Args:
            job_id: The job's id.
            timeout: This call's deadline in seconds.

        Returns:
            The job after the cancellation.
        """
        return Job.from_pb(self._t.unary("CancelJob", pb.CancelJobRequest(job_id=job_id), timeout,
                                       retry=False))

    def list_jobs(self, model: str | None = None, *, page_size: int = 0,
                  timeout: float | None = None) -> Iterator[Job]:
        """Iterates over jobs, newest first, fetching pages as it goes.

        Args:
            model: Only this model's jobs; None for all.
            page_size: Jobs per page, 1..1000; 0 for the daemon's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            A lazy iterator: errors surface when it is advanced.
        """
        request = pb.ListJobsRequest(model=model or "", page_size=page_size)
        for message in self._t.pages("ListJobs", request, "jobs", timeout):
            yield Job.from_pb(message)

    def watch_job(self, job_id: str, *,
                  timeout: float | None = None) -> Generator[Job, None, None]:
        """Follows one WatchJob stream, without reconnecting (JobHandle.wait reconnects).

        Args:
            job_id: The job's id.
            timeout: The stream's deadline in seconds.

        Returns:
            The job's states: the current one first, the final one last.
        """
        for event in self._t.stream("WatchJob", pb.WatchJobRequest(job_id=job_id), timeout):
            yield Job.from_pb(event.job)

    # -- the registry ----------------------------------------------------------------------

    def status(self, model: str | None = None, *, timeout: float | None = None) -> Status:
        """Describes the daemon and each model (or one).

        Args:
            model: One model's name; None for all.
            timeout: This call's deadline in seconds.

        Returns:
            The daemon's status and each model's, sorted by name.
        """
        request = pb.GetStatusRequest(model=model or "")
        return Status.from_pb(self._t.unary("GetStatus", request, timeout, retry=True))

    def versions(self, model: str, *, state: VersionState | str | None = None,
                 page_size: int = 0, timeout: float | None = None) -> Iterator[Version]:
        """Iterates over a model's versions, newest first, fetching pages as it goes.

        Args:
            model: The model's name.
            state: Only active or inactive versions; None for all.
            page_size: Versions per page, 1..1000; 0 for the daemon's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            A lazy iterator (manifest is None in listings; use get_version).
        """
        name = f"VERSION_STATE_{VersionState(state or VersionState.UNSPECIFIED).value.upper()}"
        request = pb.ListVersionsRequest(model=model, page_size=page_size, state=name)
        for message in self._t.pages("ListVersions", request, "versions", timeout):
            yield Version.from_pb(message)

    def get_version(self, model: str, version: int = 0, *,
                    timeout: float | None = None) -> Version:
        """Reads one version with its full manifest.

        Args:
            model: The model's name.
            version: The version number; 0 for the active version.
            timeout: This call's deadline in seconds.

        Returns:
            The version, ``manifest`` included.
        """
        request = pb.GetVersionRequest(model=model, version=version)
        return Version.from_pb(self._t.unary("GetVersion", request, timeout, retry=True))

    def rollback(self, model: str, to_version: int = 0, *, reason: str = "",
                 expected_active_version: int = 0,
                 timeout: float | None = None) -> RollbackResult:
        """Makes an earlier version active; returns once this daemon serves it. Never retried.

        Args:
            model: The model's name.
            to_version: The version to activate; 0 for the one active before the current.
            reason: Why, for the daemon's event log.
            expected_active_version: If not 0, roll back only while this version is
                active (FailedPrecondition otherwise): makes a repeated call safe.
            timeout: This call's deadline in seconds.

        Returns:
            The previous and the new active version.
        """
        request = pb.RollbackRequest(model=model, to_version=to_version, reason=reason,
                                     expected_active_version=expected_active_version)
        return RollbackResult.from_pb(self._t.unary("Rollback", request, timeout, retry=False))

    def reload(self, model: str | None = None, *,
               timeout: float | None = None) -> list[ModelStatus]:
        """Re-scans the registry on disk; returns when the daemon serves what the disk says.

        Args:
            model: One model's name; None for all.
            timeout: This call's deadline in seconds.

        Returns:
            Each re-scanned model's status after the reload.
        """
        response = self._t.unary("Reload", pb.ReloadRequest(model=model or ""), timeout,
                               retry=False)
        return [ModelStatus.from_pb(m) for m in response.models]

    # -- serving ---------------------------------------------------------------------------

    def predict(self, model: str, rows: Rows, *, version: int = 0,
                timeout: float | None = None) -> Predictions:
        """Runs a model on rows with the user's column names.

        Args:
            model: The model's name.
            rows: A sequence of {column: value} dicts, or a pandas DataFrame.
            version: A pinned version; 0 for the active version.
            timeout: This call's deadline in seconds.

        Returns:
            One prediction per row, in the order of ``rows``.
        """
        request = pb.PredictRequest(model=model, version=version)
        encoded = encode_rows(rows)
        if isinstance(encoded, pb.DenseRows):
            request.dense.CopyFrom(encoded)
        else:
            request.records.CopyFrom(encoded)
        return Predictions.from_pb(self._t.unary("Predict", request, timeout, retry=False))

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """Asks the standard grpc.health.v1 service (needs grpcio-health-checking).

        Args:
            service: A service name; "" for the daemon as a whole.
            timeout: This call's deadline in seconds.

        Returns:
            The serving status name: "SERVING", "NOT_SERVING", or "SERVICE_UNKNOWN" for a
            service the daemon does not know.
        """
        # Imported here so `import modeld` needs only grpcio and protobuf.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._t.channel)
        try:
            reply = self._t.call(stub.Check, health_pb2.HealthCheckRequest(service=service),
                                 timeout, retry=True)
        except NotFound:
            # The health protocol answers NOT_FOUND (without details) for an unknown service.
            return "SERVICE_UNKNOWN"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def connect(self, timeout: float | None = None) -> None:
        """Connects now rather than at the first call.

        Args:
            timeout: Seconds to wait for the connection; the client's default if None.

        Raises:
            ConnectionFailed: The daemon could not be reached in time.
        """
        self._t.connect(timeout)


def _param_text(value: object) -> str:
    """The daemon parses param values as JSON literals, so non-strings go as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _task_name(task: Task | str | None) -> str:
    """The proto enum name of a task ("classification" -> "TASK_CLASSIFICATION")."""
    return f"TASK_{Task(task or Task.UNSPECIFIED).value.upper()}"

