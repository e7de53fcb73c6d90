"""JobHandle: follow a training job to its end, surviving dropped streams."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import closing
from typing import Protocol

from modeld._retry import RetryPolicy
from modeld.errors import DeadlineExceeded, Unavailable
from modeld.types import Job

__all__ = ["JobHandle"]


class JobClient(Protocol):
    """What a JobHandle needs from the Client."""

    @property
    def address(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def retry(self) -> RetryPolicy | None: ...
    def get_job(self, job_id: str, *, timeout: float | None = None) -> Job: ...
    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> Job: ...
    def watch_job(self, job_id: str, *,
                  timeout: float | None = None) -> Generator[Job, None, None]: ...

# Each WatchJob stream gets a deadline too; when it passes the handle simply watches
# again (the first event of a stream is the job's current state, so nothing is lost).
# It also bounds how long a silently dead connection can go unnoticed.
WATCH_SEGMENT_SECONDS = 300.0


class JobHandle:
    """A training job: wait for it, cancel it, or read it again.

    Attributes:
        id: The job's id.
    """

    def __init__(self, client: JobClient, job_id: str, job: Job | None = None) -> None:
        self._client = client
        self.id = job_id
        self._job = job

    def __repr__(self) -> str:
        state = self._job.state.value if self._job else "unknown"
        return f"JobHandle({self.id!r}, state={state!r})"

    @property
    def job(self) -> Job | None:
        """The job as last seen (from Train, refresh, cancel or wait); None if never read."""
        return self._job

    def refresh(self, *, timeout: float | None = None) -> Job:
        """Reads the job again (GetJob).

        Args:
            timeout: This call's deadline in seconds.

        Returns:
            The job as it is now.
        """
        self._job = self._client.get_job(self.id, timeout=timeout)
        return self._job

    def cancel(self, *, timeout: float | None = None) -> Job:
        """Cancels the job (FailedPrecondition if it already ended).

        Args:
            timeout: This call's deadline in seconds.

        Returns:
            The job after the cancellation.
        """
        self._job = self._client.cancel_job(self.id, timeout=timeout)
        return self._job

    def wait(self, progress: Callable[[Job], None] | None = None,
             timeout: float | None = None) -> Job:
        """Follows WatchJob until the job ends, reconnecting when the stream drops.

        A dropped stream (UNAVAILABLE) is watched again after a jittered backoff;
        the wait gives up when the daemon stays unreachable for longer than the
        client's default timeout. A job that fails or is cancelled is returned,
        not raised: look at ``state`` and ``error``.

        Args:
            progress: Called with each new state of the job, in order.
            timeout: Seconds to wait for the end; None waits as long as it takes.

        Returns:
            The job in its final state.

        Raises:
            DeadlineExceeded: The job did not end within ``timeout``.
            Unavailable: The daemon stayed unreachable too long.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        policy = self._client.retry or RetryPolicy()
        delays = policy.delays()
        outage_since: float | None = None
        while True:
            segment = self._left(deadline, timeout)
            try:
                with closing(self._client.watch_job(self.id, timeout=segment)) as events:
                    for job in events:
                        self._job, outage_since = job, None
                        delays = policy.delays()  # news from the daemon: back off from scratch
                        if progress is not None:
                            progress(job)
                        if job.done:
                            return job
            except Unavailable:
                outage_since = outage_since or time.monotonic()
                # Give up once the daemon has been silent for longer than a whole call may take.
                if time.monotonic() - outage_since > self._client.timeout:
                    raise
            except DeadlineExceeded:
                # Either the segment ended (watch again) or the caller's deadline passed.
                self._left(deadline, timeout)
                continue
            # The stream dropped, or ended without a final state: watch again after a pause.
            time.sleep(min(next(delays), self._left(deadline, timeout)))

    def _left(self, deadline: float | None, timeout: float | None) -> float:
        """Seconds until the caller's deadline, capped at one watch segment."""
        if deadline is None:
            return WATCH_SEGMENT_SECONDS
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"job {self.id} did not end within {timeout:g} s")
        return min(left, WATCH_SEGMENT_SECONDS)
