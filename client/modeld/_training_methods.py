"""Client methods for training jobs: Train, WatchJob, GetJob, CancelJob, ListJobs.

Train is retried on UNAVAILABLE because it always carries a request_id: the
daemon answers a repeat with the job it already queued. GetJob and ListJobs
are reads and retry too; CancelJob does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence

from modeld._retry import RetryPolicy
from modeld._transport import Transport
from modeld.errors import DeadlineExceeded
from modeld.jobs import JobHandle
from modeld.options import RowFilter, TrainSpec, Validation
from modeld.types import Job, Task
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["TrainingMethods"]


class TrainingMethods:
    """Mixed into Client; uses its Transport."""

    _t: Transport

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

    # -- training jobs ---------------------------------------------------------------------

    def train(self, model: str, data: str, target: str = "", *, algorithm: str,
              params: Mapping[str, object] | None = None, folds: int = 0,
              seed: int | None = None, task: Task | str | None = None, eval_label: str = "",
              activate: bool = True, features: Sequence[str] = (),
              drop_columns: Sequence[str] = (), filters: Sequence[RowFilter] = (),
              validation: Validation | None = None, calibration: str = "none",
              engine: str = "local", request_id: str | None = None,
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
            features: Only these feature columns; empty for all but the target.
            drop_columns: Columns never used as features (ids, leaks).
            filters: Rows are kept only if they pass every filter.
            validation: What data validation does about problems; None for defaults.
            calibration: none, sigmoid, isotonic or auto (classification only).
            engine: local, dask to train on the daemon's Dask cluster, or auto (dask for
                datasets over the model's policy ``dask_above_bytes``).
            request_id: Makes the call idempotent; a random one is generated if None.
            timeout: This call's deadline in seconds.

        Returns:
            A handle on the queued job: ``.wait()``, ``.cancel()``, ``.refresh()``.
        """
        spec = TrainSpec(model, data, target=target, algorithm=algorithm,
                         params=dict(params or {}), folds=folds, seed=seed, task=task,
                         eval_label=eval_label, activate=activate, features=tuple(features),
                         drop_columns=tuple(drop_columns), filters=tuple(filters),
                         validation=validation, calibration=calibration, engine=engine)
        return self.submit(spec, request_id=request_id, timeout=timeout)

    def submit(self, spec: TrainSpec, *, request_id: str | None = None,
               timeout: float | None = None) -> JobHandle:
        """Queues a training job described by a TrainSpec (what ``train`` does).

        Args:
            spec: What to train.
            request_id: Makes the call idempotent; a random one is generated if None.
            timeout: This call's deadline in seconds.

        Returns:
            A handle on the queued job.

        Raises:
            DeadlineExceeded: its message names the request_id, with which a repeated
                Train returns the job if the daemon queued it as the deadline passed.
        """
        request_id = request_id or uuid.uuid4().hex
        # Safe to retry: the same request_id makes the daemon return the job it already queued.
        try:
            job = Job.from_pb(self._t.unary("Train", spec.to_pb(request_id), timeout, retry=True))
        except DeadlineExceeded as err:
            # The daemon may have queued the job as the deadline passed: say how to find it.
            raise DeadlineExceeded(f"{err.message} (a job may have been queued all the same: "
                                   f"Train again with request_id={request_id!r} returns it, "
                                   "or queues it once)", err.code) from err
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

