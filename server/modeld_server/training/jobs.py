"""The job runner: a bounded queue, N concurrent worker processes, persistence, watchers.

Each job trains in its own process forked from a warm forkserver, so a crash or
an out-of-memory kill fails that job and never the daemon, and CancelJob can
kill it outright. The runner publishes the result into the registry.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from modeld_server import fastpaths
from modeld_server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    ModeldError,
    NotFound,
    ResourceExhausted,
    job_error,
    quoted,
    training_off,
)
from modeld_server.registry.store import RegistryStore, Staging
from modeld_server.telemetry import JOB_DURATION, JOBS_FINISHED
from modeld_server.training import entry, spawner
from modeld_server.training.claims import RequestClaims
from modeld_server.training.jobrecord import (
    JobFiles,
    JobRecord,
    new_job_id,
    recover_published,
)
from modeld_server.training.messages import Failure, Outcome, Progress, Result
from modeld_server.types import JobState, TrainSpec

log = structlog.get_logger(__name__)

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload([entry.LIFELINE_MODULE, entry.WORKER_MODULE, entry.PREHEAT_MODULE])

OnPublished = Callable[[str, int], None]
ContextFor = Callable[[TrainSpec], dict[str, Any]]
_PAGE = os.sysconf("SC_PAGE_SIZE")
_EXIT_GRACE = 30.0  # seconds a worker gets to exit after its outcome


@dataclass(frozen=True, kw_only=True)
class JobLimits:
    """What one training job may use; the job fails with the limit's name when it is passed."""

    timeout: float = 3600.0
    memory_mb: int = 8192
    max_rows: int = 10_000_000
    cpus: int = 0
    """Fits a job may run at once (see worker.train); 0: every CPU."""
    max_bytes: int = 0
    """The most bytes a dataset may hold uncompressed (max_dataset_bytes); 0: no limit."""


class JobManager:
    """Accepts, runs, cancels and remembers training jobs."""

    def __init__(self, store: RegistryStore, data_root: Path, state_dir: Path, *,
                 max_concurrent: int = 1, max_queued: int = 16,
                 limits: JobLimits | None = None,
                 on_published: OnPublished | None = None,
                 context_for: ContextFor | None = None, training: bool = True,
                 processes: Any = None) -> None:
        """Args:
            processes: where workers start: a multiprocessing context (Pipe, Process); None
                for the forkserver. Tests pass one that runs a fake worker in a thread.
        """
        self._store = store
        self._ctx = _CTX if processes is None else processes
        self._ensure_forkserver = (spawner.ensure_forkserver if processes is None
                                   else lambda: None)
        self._training = training
        """False on a serve-only daemon: every submit is refused, no process is started."""
        self._claims = RequestClaims(store)
        self._data_root = data_root
        self._files = JobFiles(state_dir)
        self._max_concurrent = max_concurrent
        self._max_queued = max_queued
        self._limits = limits or JobLimits()
        self._kill_reasons: dict[str, str] = {}
        self._cancelled: set[str] = set()
        """Jobs asked to stop (Cancel, close): a worker not yet started never starts."""
        self._on_published = on_published or (lambda model, version: None)
        self._context_for = context_for or (lambda spec: {})
        self._cond = threading.Condition()
        self._jobs: dict[str, JobRecord] = {}
        self._by_request: dict[str, str] = {}
        self._queue: list[str] = []
        self._running: dict[str, multiprocessing.process.BaseProcess | None] = {}
        self._unsaved: set[str] = set()
        """Jobs whose latest record could not be saved (see _persist)."""
        self._closed = False
        self._recover()

    # ---- lifecycle ------------------------------------------------------------------------

    def _recover(self) -> None:
        """Loads past records; a job that was queued or running when we stopped is FAILED,
        unless it had published its version (see recover_published)."""
        for record in self._files.load_all():
            self._jobs[record.id] = record
            if not record.state.final:
                ended = recover_published(record, self._store)
                if ended is None:
                    ended = record.but(state=JobState.FAILED, phase="done",
                                       error="interrupted by restart")
                    log.warning("job_interrupted", job_id=record.id, model=record.model)
                self._jobs[record.id] = ended.but(finished_at=ended.finished_at or time.time())
                self._persist(self._jobs[record.id])  # a full state dir must not stop the start
            if record.spec.request_id:
                self._by_request[record.spec.request_id] = record.id

    def warm_up(self) -> None:
        """Starts the forkserver (importing the training libraries) before the first job."""
        if not self._training:
            return
        spawner.ensure_forkserver()
        process = _CTX.Process(target=entry.warm_up, daemon=True)
        process.start()
        process.join()

    def close(self, reason: str = "interrupted by shutdown", wait: float = _EXIT_GRACE) -> None:
        """Refuses new jobs, kills running workers and records every unfinished job as FAILED.

        Then waits (up to `wait` seconds) for the runners to remove their staging folders,
        so a daemon started next on the same registry finds none of them half-built.
        """
        with self._cond:
            self._closed = True
            for job_id in list(self._queue) + list(self._running):
                self._cancelled.add(job_id)
                if not self._jobs[job_id].state.final:  # one that just ended keeps its own
                    self._finish(job_id, JobState.FAILED, error=reason)
            self._queue.clear()
            processes = [p for p in self._running.values() if p is not None]
        for process in processes:
            process.kill()
        deadline = time.monotonic() + wait
        with self._cond:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._running:
                log.warning("job_runners_still_busy", jobs=sorted(self._running))

    def drain(self, timeout: float = 120.0) -> None:
        """Blocks until no job is queued or running (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("jobs still running after drain timeout")
                self._cond.wait(left)

    # ---- requests -------------------------------------------------------------------------

    def submit(self, spec: TrainSpec) -> JobRecord:
        """Queues a job; the same request_id returns the existing job, also when another
        daemon on the same registry took it (as that daemon last saved it; see claims.py).

        Raises:
            AlreadyExists: request_id used before for a different request.
            ResourceExhausted: the queue is full, or the state dir (the record cannot be saved).
            FailedPrecondition: the daemon is shutting down, or the state dir is not writable,
                or it does not train (--no-training; a scheduled run included).
        """
        if not self._training:
            raise training_off("Train")
        with self._cond:
            if spec.request_id and spec.request_id in self._by_request:
                return _same_request(self._jobs[self._by_request[spec.request_id]], spec)
            if spec.request_id and (holder := self._claims.find(spec)) is not None:
                return _same_request(holder, spec)  # taken by another daemon
            if self._closed:
                raise FailedPrecondition("the daemon is shutting down and takes no new jobs")
            busy = len(self._running) >= self._max_concurrent
            if busy and len(self._queue) >= self._max_queued:
                raise ResourceExhausted(
                    f"the training queue is full ({self._max_queued} jobs waiting, "
                    f"max_queued_jobs={self._max_queued})"
                )
            record = JobRecord(id=new_job_id(), spec=spec)
            # Saved before it exists anywhere else: a job whose record cannot be written
            # is refused whole, so a Train that failed never runs later.
            self._files.save_new(record)
            if spec.request_id:
                try:
                    holder = self._claims.claim(record)
                except Exception:
                    self._files.discard(record)
                    raise
                if holder is not None:
                    self._files.discard(record)
                    return _same_request(holder, spec)  # by another daemon, just now
            self._jobs[record.id] = record
            if spec.request_id:
                self._by_request[spec.request_id] = record.id
            self._queue.append(record.id)
            self._flush_unsaved()
            self._start_ready()
            log.info("job_queued", job_id=record.id, model=spec.model, algorithm=spec.algorithm)
            return record

    def get(self, job_id: str) -> JobRecord:
        with self._cond:
            return self._require(job_id)

    def has_active(self, model: str) -> bool:
        """Whether a job of `model` is queued or running (the scheduler never stacks runs)."""
        with self._cond:
            return any(self._jobs[j].model == model and not self._jobs[j].state.final
                       for j in (*self._queue, *self._running))

    def counts(self) -> tuple[int, int]:
        """(running, queued)."""
        with self._cond:
            running = sum(not self._jobs[j].state.final for j in self._running)
            return running, len(self._queue)

    def list(self, model: str = "", page_size: int = 50, after: str = "") -> list[JobRecord]:
        """Jobs newest first, optionally of one model, starting after job id `after`."""
        with self._cond:
            records = sorted(self._jobs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        if model:
            records = [r for r in records if r.model == model]
        if after:
            ids = [r.id for r in records]
            if after not in ids:
                raise InvalidArgument(f"page_token refers to unknown job {quoted(after)}")
            records = records[ids.index(after) + 1 :]
        return records[:page_size]

    def cancel(self, job_id: str) -> JobRecord:
        """Cancels a queued or running job.

        Raises:
            NotFound: no such job.
            FailedPrecondition: it already ended, or is publishing its version.
        """
        with self._cond:
            record = self._require(job_id)
            if record.state.final:
                raise FailedPrecondition(f"job {job_id} already ended ({record.state.value})")
            if record.phase == "publishing":
                raise FailedPrecondition(f"job {job_id} is publishing its version; too late")
            self._cancelled.add(job_id)
            process = self._running.get(job_id)
            if job_id in self._queue:
                self._queue.remove(job_id)
                self._finish(job_id, JobState.CANCELLED, error="cancelled while queued")
        if process is not None:
            process.kill()
        log.info("job_cancel_requested", job_id=job_id)
        with self._cond:
            self._cond.wait_for(lambda: self._jobs[job_id].state.final, timeout=30.0)
            return self._jobs[job_id]

    def watch(self, job_id: str, poll: float = 1.0) -> Iterator[JobRecord]:
        """Yields the job now, then after every change (coalesced), ending at a final state."""
        seen = -1
        while True:
            with self._cond:
                snapshot = self._require(job_id)
                while snapshot.seq == seen:
                    self._cond.wait(poll)
                    snapshot = self._jobs[job_id]
            seen = snapshot.seq
            yield snapshot
            if snapshot.state.final:
                return

    def _require(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise NotFound(f"job {quoted(job_id)} not found")
        return record

    # ---- running --------------------------------------------------------------------------

    def _start_ready(self) -> None:
        """Starts queued jobs while slots are free. Caller holds the lock."""
        while self._queue and len(self._running) < self._max_concurrent and not self._closed:
            job_id = self._queue.pop(0)
            self._running[job_id] = None
            threading.Thread(target=self._run, args=(job_id,), name=f"job-{job_id}",
                             daemon=True).start()

    def _run(self, job_id: str) -> None:
        record = self._jobs[job_id]
        staging: Staging | None = None
        try:
            staging = self._store.begin_staging(record.model)
            outcome = self._train(job_id, staging)
            if outcome is not None:
                self._publish(job_id, staging, outcome)
        except Exception as exc:  # the runner must always settle the job
            log.exception("job_runner_failed", job_id=job_id)
            if staging is not None:
                staging.discard()  # nothing half-built outlives a job reported FAILED
            with self._cond:
                if not self._jobs[job_id].state.final:
                    self._finish(job_id, JobState.FAILED, error=job_error(exc))
        finally:
            if staging is not None:
                staging.discard()
            process = self._running.get(job_id)
            if process is not None:
                # It exits right after sending its outcome; one still alive here was left
                # unread by an unexpected error, and would hold the slot for ever.
                process.join(timeout=_EXIT_GRACE)
                if process.is_alive():
                    process.kill()
                    process.join()
            with self._cond:
                self._running.pop(job_id, None)
                self._start_ready()
                self._cond.notify_all()

    def _train(self, job_id: str, staging: Staging) -> dict[str, Any] | None:
        """Runs the worker process; returns its result, or None when the job ended otherwise."""
        record = self._jobs[job_id]
        parent, child = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=entry.run_job, daemon=True,
            args=(record.spec.to_json(), str(self._data_root), str(staging.path), child,
                  self._limits.max_rows, self._context_for(record.spec), self._limits.cpus,
                  self._limits.memory_mb, self._limits.max_bytes,
                  fastpaths.enabled()),  # the worker is a process of its own
        )
        self._ensure_forkserver()
        with self._cond:
            if self._jobs[job_id].state.final:
                return None  # closed while it waited for a slot
            if job_id in self._cancelled:
                self._finish(job_id, JobState.CANCELLED, error="cancelled by request")
                return None
            # Started under the lock so close() and cancel() only ever see started processes.
            process.start()
            self._running[job_id] = process
            self._update(job_id, persist=True, state=JobState.RUNNING, phase="starting",
                         started_at=time.time())
        child.close()
        log.info("job_started", job_id=job_id, model=record.model, pid=process.pid)
        outcome = self._follow(job_id, parent, process)
        if outcome is None:
            process.join()  # it died without a word: its exit code says how
        # Otherwise publishing need not wait for the process to exit (tens of ms at
        # niceness 10 on a busy machine); _run joins it before the slot is freed.
        return self._settle(job_id, process, outcome)

    def _follow(self, job_id: str, conn: Any, process: Any) -> Outcome | None:
        """Relays progress until the worker sends its outcome or dies; enforces the limits."""
        deadline = time.monotonic() + self._limits.timeout
        while True:
            try:
                ready = conn.poll(0.2)
                if not ready and not process.is_alive():
                    # Dead: what it sent before dying is read, but no more is waited for
                    # (fit processes it forked may hold the pipe open for a long while).
                    ready = conn.poll(0)
                    if not ready:
                        return None
                message = conn.recv() if ready else None
            except (EOFError, OSError):
                return None
            if message is None:
                self._enforce_limits(job_id, process, deadline)
                continue
            if isinstance(message, Result | Failure):
                return message
            if not isinstance(message, Progress):
                return Failure("Internal", f"the worker sent {type(message).__name__}, "
                               "not a Progress, Result or Failure")
            with self._cond:
                if not self._jobs[job_id].state.final:
                    self._update(job_id, phase=message.phase, progress=message.progress,
                                 message=message.message, metrics=message.metrics)

    def _enforce_limits(self, job_id: str, process: Any, deadline: float) -> None:
        reason = ""
        if time.monotonic() > deadline:
            reason = f"exceeded the training time limit (train_timeout={self._limits.timeout:g}s)"
        else:
            used_mb = _tree_memory_mb(process.pid, self._limits.memory_mb)
            if used_mb > self._limits.memory_mb:
                reason = (f"used {used_mb:.0f} MiB, over the training memory limit "
                          f"(train_memory_mb={self._limits.memory_mb})")
        if reason and job_id not in self._kill_reasons:
            self._kill_reasons[job_id] = reason
            log.warning("job_limit_exceeded", job_id=job_id, reason=reason)
            process.kill()

    def _settle(self, job_id: str, process: Any,
                outcome: Outcome | None) -> dict[str, Any] | None:
        with self._cond:
            if self._jobs[job_id].state.final:
                return None  # closed under us
            if job_id in self._cancelled:
                self._finish(job_id, JobState.CANCELLED, error="cancelled by request")
                return None
            if job_id in self._kill_reasons:
                self._finish(job_id, JobState.FAILED, error=self._kill_reasons.pop(job_id))
                return None
            if outcome is None:
                self._finish(job_id, JobState.FAILED, error=_death_reason(process.exitcode))
                return None
            if isinstance(outcome, Failure):
                self._finish(job_id, JobState.FAILED, error=str(outcome))
                return None
            self._update(job_id, phase="publishing", progress=0.98, message="publishing")
            return outcome.fields

    def _publish(self, job_id: str, staging: Staging, result: dict[str, Any]) -> None:
        """Publishes the version, then reports the job SUCCEEDED: once the version is in
        place nothing (a pointer that cannot be written, a failed load) makes it FAILED."""
        record = self._jobs[job_id]
        spec = record.spec
        manifest = dict(result, job_id=record.id, request_id=spec.request_id,
                        created_at=datetime.now(UTC).isoformat())
        rejected = result.get("state") == "rejected"
        activate = spec.activate and not rejected
        published = self._store.publish(staging, manifest, activate=activate, job_id=record.id)
        version = published.version
        try:
            # Load before reporting success, so a client that saw SUCCEEDED can Predict at once.
            self._on_published(record.model, version)
        except Exception:  # the version is published whatever serving it met
            log.exception("after_publish_failed", job_id=record.id, model=record.model,
                          version=version)
        message = f"published version {version}"
        if rejected:
            message += " as REJECTED by the quality gate: " + "; ".join(
                (result.get("gate") or {}).get("reasons", []))
        elif published.not_activated:
            message += f"; not activated: {published.not_activated}"
        with self._cond:
            self._finish(job_id, JobState.SUCCEEDED, message=message, version=version,
                         activated=published.activated, metrics=result.get("metrics", {}))

    def _finish(self, job_id: str, state: JobState, *, error: str = "", message: str = "",
                **changes: Any) -> None:
        """Moves a job to a final state (with `changes`, JobRecord fields) and persists it.
        Caller holds the lock."""
        progress = 1.0 if state is JobState.SUCCEEDED else self._jobs[job_id].progress
        now = time.time()
        record = self._update(job_id, persist=True, state=state, phase="done", error=error,
                              message=message or error, progress=progress, finished_at=now,
                              **changes)
        JOBS_FINISHED.labels(state.value).inc()
        if record.started_at is not None:
            JOB_DURATION.observe(now - record.started_at)
        log.info("job_finished", job_id=job_id, model=record.model, state=state.value,
                 version=record.version, error=error or None)

    def _update(self, job_id: str, *, persist: bool = False, **changes: Any) -> JobRecord:
        """Replaces a job's record by a copy with `changes` (JobRecord fields), wakes the
        watchers, and saves it when `persist`. Caller holds the lock."""
        record = self._jobs[job_id] = self._jobs[job_id].but(**changes)
        if persist:
            self._persist(record)
        self._cond.notify_all()
        return record

    def _persist(self, record: JobRecord) -> None:
        """Saves a record; one that cannot be saved (a full state dir) is logged and kept in
        memory as the truth, and saved again at the next successful write. Caller holds the
        lock."""
        self._update_claim(record)
        try:
            self._files.save(record)
        except OSError as exc:
            self._unsaved.add(record.id)
            log.error("job_record_not_saved", job_id=record.id, state=record.state.value,
                      error=str(exc), unsaved=len(self._unsaved))
            return
        self._unsaved.discard(record.id)
        self._flush_unsaved()

    def _flush_unsaved(self) -> None:
        """Saves records an earlier write failed on, now that a write worked."""
        for job_id in sorted(self._unsaved):
            try:
                self._files.save(self._jobs[job_id])
            except OSError:
                return  # still failing: kept for the next attempt
            self._unsaved.discard(job_id)
            log.info("job_record_saved_late", job_id=job_id)

    def _update_claim(self, record: JobRecord) -> None:
        """Tells other daemons on the registry how the job of a request id is doing."""
        if not record.spec.request_id:
            return
        try:
            self._claims.update(record)
        except (OSError, ModeldError) as exc:  # they go on seeing its last saved state
            log.warning("request_claim_not_updated", job_id=record.id, error=str(exc))


def _same_request(existing: JobRecord, spec: TrainSpec) -> JobRecord:
    """The job that has `spec`'s request_id, if it was asked for the same thing."""
    if existing.spec != spec:
        raise AlreadyExists(f"request_id {quoted(spec.request_id)} was used for job "
                            f"{existing.id} with a different request")
    return existing


def _tree_memory_mb(pid: int, limit_mb: float) -> float:
    """Memory of a job in MiB: its process and its children, when that may pass `limit_mb`.

    The resident sizes are summed first (cheap: statm). Forked fit processes share the
    job's data copy-on-write, so that sum counts shared pages once per process; only when
    it passes the limit is the proportional set size (smaps_rollup, which splits each
    shared page between the processes mapping it) summed instead, and returned.
    """
    pids = _process_tree(pid)
    rss = sum(_rss_mb(p) for p in pids)
    if rss <= limit_mb or len(pids) == 1:
        return rss
    return sum(_pss_mb(p) for p in pids)


def _process_tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError, ValueError), \
                open(f"/proc/{current}/task/{current}/children") as fh:
            pending.extend(int(child) for child in fh.read().split())
    return found


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / (1024 * 1024)
    except (OSError, IndexError, ValueError):
        return 0.0


def _pss_mb(pid: int) -> float:
    """One process's PSS in MiB; its RSS where smaps_rollup cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return _rss_mb(pid)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory, or killed by an operator)" if name == "SIGKILL" else ""
        return f"worker process was killed by {name}{hint}"
    return f"worker process exited with code {exitcode} without a result"
