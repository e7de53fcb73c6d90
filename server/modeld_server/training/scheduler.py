"""Scheduled and data-triggered retraining, kept beside each model in schedule.json.

    {"spec": ScheduleSpec.to_json(),
     "state": {"next_run_at", "last_run_at", "last_outcome", "baseline": {"sha256", "rows"}}}

Replicas may share a registry, so the due-check and the claim (slot consumed,
last_run_at written) happen under the model's OS file lock with schedule.json
re-read inside it: exactly one replica submits a due run. submit() runs outside the
lock and its outcome is recorded after. Tests inject the clock and call step().
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from croniter import croniter

from modeld_server.errors import (
    InvalidArgument,
    ModeldError,
    NotFound,
    ResourceExhausted,
    quoted,
)
from modeld_server.registry import fsio
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.meta import SCHEDULE, ModelMeta
from modeld_server.training import multifile
from modeld_server.training.datasets import (
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    dataset_files,
    open_maybe_gzip,
)

log = structlog.get_logger(__name__)

DEFAULT_MIN_INTERVAL = 60.0
#: The longest interval a schedule accepts; beyond it the next run cannot be stamped.
MAX_INTERVAL = 10 * 365 * 86400.0
Baseline = dict[str, Any]  # {"sha256": str, "rows": int}: the dataset as of the last run


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """A model's schedule; `train` is the training request as JSON, opaque here."""

    model: str
    train: dict[str, Any]
    dataset_path: str
    cron: str = ""
    interval_seconds: float = 0.0
    min_new_rows: int = 0
    min_interval_seconds: float = DEFAULT_MIN_INTERVAL
    on_drift: bool = False
    """Run when this daemon's drift monitor alerts on the model (see Scheduler.on_drift)."""

    def to_json(self) -> dict[str, Any]:
        """Returns: the spec as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleSpec:
        """Builds a spec from `to_json` output; missing optional fields take their defaults.

        Raises:
            InvalidArgument: a field is missing or has the wrong type.
        """
        try:
            return cls(model=str(data["model"]), train=dict(data.get("train") or {}),
                       dataset_path=str(data.get("dataset_path") or ""),
                       cron=str(data.get("cron") or ""),
                       interval_seconds=float(data.get("interval_seconds") or 0.0),
                       min_new_rows=int(data.get("min_new_rows") or 0),
                       min_interval_seconds=float(
                           data.get("min_interval_seconds", DEFAULT_MIN_INTERVAL)),
                       on_drift=bool(data.get("on_drift", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"schedule is malformed: {exc!r}") from None

    def validated(self) -> ScheduleSpec:
        """Checks every field.

        Returns:
            The spec; a min_interval_seconds of 0 becomes 60, as the proto documents.

        Raises:
            InvalidArgument: naming the first bad field.
        """
        validate_model_name(self.model)
        for name in ("interval_seconds", "min_interval_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 <= value <= MAX_INTERVAL:
                raise InvalidArgument(
                    f"{name} must be between 0 and {MAX_INTERVAL:g} (ten years), not {value:g}")
        if 0 < self.interval_seconds < 1:
            raise InvalidArgument(
                f"interval_seconds must be 0 (none) or at least 1, not {self.interval_seconds}")
        if self.min_new_rows < 0:
            raise InvalidArgument(f"min_new_rows must be >= 0, not {self.min_new_rows}")
        if self.cron:
            _check_cron(self.cron)
        if not (self.cron or self.interval_seconds or self.min_new_rows or self.on_drift):
            raise InvalidArgument(
                "a schedule needs cron, interval_seconds, min_new_rows or on_drift")
        if self.min_new_rows and not self.dataset_path:
            raise InvalidArgument("dataset_path is required for a data trigger (min_new_rows)")
        if self.train.get("model") not in (None, "", self.model):
            raise InvalidArgument(f"train.model {quoted(self.train['model'])} must be "
                                  f"{self.model!r}")
        return replace(self, min_interval_seconds=self.min_interval_seconds or DEFAULT_MIN_INTERVAL)

    def next_after(self, t: float) -> float | None:
        """The first timed slot after `t` (cron or interval, whichever first); None if untimed."""
        slots = [t + self.interval_seconds] if self.interval_seconds else []
        if self.cron:
            slots.append(float(croniter(self.cron, datetime.fromtimestamp(t, tz=UTC))
                               .get_next(float)))
        return min(slots) if slots else None


@dataclass(frozen=True)
class ScheduleState:
    """What GetSchedule and GetStatus show."""

    next_run_at: float | None
    last_run_at: float | None
    last_outcome: str


class Scheduler:
    """Fires each model's schedule: by cron, by interval, or when its dataset gains rows."""

    def __init__(self, meta: ModelMeta, data_root: Path, submit: Callable[[dict[str, Any]], str],
                 busy: Callable[[str], bool], clock: Callable[[], float] = time.time,
                 poll_interval: float = 5.0, max_bytes: int = 1 << 30) -> None:
        self._meta, self._store = meta, meta.store
        self._data_root = data_root
        self._max_bytes = max_bytes  # uncompressed bytes a data trigger reads to count rows
        self._submit, self._busy, self._clock = submit, busy, clock
        self._poll_interval = poll_interval
        # (size, mtime_ns) -> baseline per dataset, so an untouched file is not read again.
        self._seen: dict[str, tuple[Stamp, Baseline | None]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def set(self, spec: ScheduleSpec) -> ScheduleState:
        """Stores (replacing) a model's schedule; it counts from now, with no immediate run.

        Args:
            spec: the schedule; validated here. Its dataset's content becomes the data baseline.

        Returns:
            The new state: the first timed run, no last run.

        Raises:
            InvalidArgument: a bad field. NotFound, PermissionDenied: the data trigger's dataset.
        """
        spec = spec.validated()
        baseline = self._observe(spec.dataset_path, strict=True) if spec.min_new_rows else None
        state = {"next_run_at": spec.next_after(self._clock()), "last_run_at": None,
                 "last_outcome": "", "baseline": baseline}
        self._meta.write(spec.model, SCHEDULE, {"spec": spec.to_json(), "state": state},
                         "schedule_set", cron=spec.cron, interval_seconds=spec.interval_seconds,
                         min_new_rows=spec.min_new_rows, on_drift=spec.on_drift)
        return _public(state)

    def get(self, model: str) -> tuple[ScheduleSpec, ScheduleState]:
        """A model's schedule.

        Args:
            model: the model's name.

        Returns:
            The schedule and its state.

        Raises:
            NotFound: the model has no schedule.
        """
        doc = self._read(model)
        return ScheduleSpec.from_json(doc["spec"]), _public(doc["state"])

    def delete(self, model: str) -> ScheduleSpec:
        """Removes a model's schedule.

        Args:
            model: the model's name.

        Returns:
            The schedule that was removed.

        Raises:
            NotFound: the model has no schedule.
        """
        self._read(model)  # NotFound before locking: the model's folder may not exist
        with fsio.file_lock(self._store.paths(model).lock):
            spec = ScheduleSpec.from_json(self._read(model)["spec"])
            self._save(model, None)
            self._store.append_event(model, "schedule_deleted")
        return spec

    def step(self, now: float | None = None) -> list[tuple[str, str]]:
        """One pass over every model's schedule: fires or skips whatever is due.

        Args:
            now: the time to act at; the injected clock when None.

        Returns:
            (model, outcome) for each schedule that fired or was skipped. A data-triggered run
            that stays pending (busy, min_interval) is reported when it is first skipped only.
        """
        now = self._clock() if now is None else now
        results = []
        for path in sorted(self._store.root.glob(f"[!.]*/{SCHEDULE}")):
            model = path.parent.name
            try:
                outcome = self._step_model(model, now)
            except NotFound:
                continue  # deleted since the listing
            except Exception:  # one broken schedule must not stop the others
                log.exception("schedule_step_failed", model=model)
                continue
            if outcome:
                results.append((model, outcome))
        return results

    def on_drift(self, model: str, reason: str, now: float | None = None) -> str:
        """The drift monitor alerted on `model`: runs its schedule if it has on_drift.

        The claim is the timed and data triggers' (under the model's lock, busy and
        min_interval skip it), and the outcome names the reason, so GetStatus says why
        the run started.

        Returns:
            The outcome ("submitted job ...: REASON", a skip reason), "" without an
            on_drift schedule.
        """
        now = self._clock() if now is None else now
        try:
            spec = ScheduleSpec.from_json(self._read(model)["spec"])
        except NotFound:
            return ""
        if not spec.on_drift:
            return ""
        with fsio.file_lock(self._store.paths(model).lock):
            claim = self._claim(model, now, None, trigger=reason)
        if isinstance(claim, str):
            return claim
        return self._fire(model, claim, now, reason)

    def start(self) -> None:
        """Starts a daemon thread that calls step() at once, then every poll_interval."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="modeld-scheduler",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stops the thread, waiting for a step in progress to finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # e.g. the registry root vanished: try again next poll
                log.exception("schedule_loop_failed")
            if self._stopping.wait(self._poll_interval):
                return

    def _step_model(self, model: str, now: float) -> str:
        spec = ScheduleSpec.from_json(self._read(model)["spec"])
        # Hash outside the lock: every writer of the model waits on it.
        observed = self._observe(spec.dataset_path) if spec.min_new_rows else None
        with fsio.file_lock(self._store.paths(model).lock):
            claim = self._claim(model, now, observed)
        if isinstance(claim, str):
            return claim
        return self._fire(model, claim, now)

    def _fire(self, model: str, claim: ScheduleSpec, now: float, reason: str = "") -> str:
        try:
            outcome = f"submitted job {self._submit(claim.train)}"
            if reason:
                outcome += f": {reason}"
        except ModeldError as exc:
            outcome = f"failed: {exc.message}"
        except Exception:  # a bug behind submit: record it rather than leave "submitting"
            log.exception("schedule_submit_crashed", model=model)
            outcome = "failed: internal error"
        log.info("schedule_fired", model=model, outcome=outcome)
        self._record_outcome(model, now, outcome)
        return outcome

    def _claim(self, model: str, now: float, observed: Baseline | None,
               trigger: str = "") -> ScheduleSpec | str:
        """Under the lock: the spec to submit (its run recorded), or the skip reason / "".
        `trigger` names an event (a drift alert) that makes the run due."""
        doc = self._read(model)  # re-read: another replica may have acted meanwhile
        spec, state = ScheduleSpec.from_json(doc["spec"]), doc["state"]
        timed = not trigger and state["next_run_at"] is not None and now >= state["next_run_at"]
        if not (timed or trigger or _data_due(spec, state.get("baseline"), observed)):
            return ""
        if timed:  # the slot is consumed, run or skipped; after missed slots, count from now
            following = spec.next_after(state["next_run_at"])
            late = following is None or following <= now
            state["next_run_at"] = spec.next_after(now) if late else following
        reason = self._skip_reason(model, spec, state["last_run_at"], now)
        if reason:
            # An untimed (data) run stays pending: report it once, not on every pass.
            if not timed and not trigger and state["last_outcome"] == reason:
                return ""
            reason = f"{reason} ({trigger})" if trigger else reason
            state["last_outcome"] = reason
            self._save(model, doc)
            self._store.append_event(model, "schedule_skipped", reason=reason)
            log.info("schedule_skipped", model=model, reason=reason)
            return reason
        state.update(last_run_at=now, last_outcome="submitting")
        state["baseline"] = observed or state.get("baseline")
        self._save(model, doc)
        return spec

    def _skip_reason(self, model: str, spec: ScheduleSpec, last: float | None, now: float) -> str:
        if self._busy(model):
            return f"skipped: a job for {model!r} is running"
        if last is not None and now - last < spec.min_interval_seconds:
            return f"skipped: min_interval {spec.min_interval_seconds:g}s since the last run"
        return ""

    def _record_outcome(self, model: str, claimed_at: float, outcome: str) -> None:
        with fsio.file_lock(self._store.paths(model).lock):
            try:
                doc = self._read(model)
            except NotFound:
                return  # deleted while submitting
            if doc["state"]["last_run_at"] != claimed_at:
                return  # replaced while submitting: the new schedule's state is not ours
            doc["state"]["last_outcome"] = outcome
            self._save(model, doc)
            self._store.append_event(model, "schedule_run", outcome=outcome)

    def _read(self, model: str) -> dict[str, Any]:
        doc = self._meta.read(model, SCHEDULE)
        if doc is None or not isinstance(doc.get("spec"), dict):
            raise NotFound(f"schedule of model {model!r} not found")
        if not isinstance(doc.get("state"), dict):  # hand-edited: start afresh
            doc["state"] = {"next_run_at": None, "last_run_at": None, "last_outcome": ""}
        return doc

    def _save(self, model: str, doc: dict[str, Any] | None) -> None:
        """Replaces schedule.json; the caller holds the model lock."""
        self._meta.write_unlocked(model, SCHEDULE, doc)

    def _observe(self, dataset_path: str, strict: bool = False) -> Baseline | None:
        """The dataset's sha256 and data rows; None when it is missing or unreadable.

        A glob or folder counts the rows of all its files (at most datasets.MAX_FILES) and
        its sha256 is the one training records (multifile.sha256); max_bytes bounds the
        uncompressed bytes read over all of them together. The result is remembered
        until a file's (name, size, mtime) changes, or the matched files do.

        Args:
            strict: raise the precise error instead (SetSchedule answers it): the path's
                (NotFound, PermissionDenied, InvalidArgument), a file over max_dataset_bytes
                uncompressed (ResourceExhausted), or one that cannot be read (InvalidArgument).
        """
        try:
            found = dataset_files(self._data_root, dataset_path)
            files = [found] if isinstance(found, Path) else found.files
            stamp = tuple((str(f), *_size_mtime(f)) for f in files)
        except (ModeldError, OSError):
            if strict:
                raise
            return None
        seen = self._seen.get(dataset_path)
        if seen is not None and seen[0] == stamp and not strict:
            return seen[1]
        try:
            observed: Baseline | None = {"sha256": multifile.sha256(found),
                                         "rows": count_files_rows(files, self._max_bytes)}
        except ResourceExhausted as exc:
            if strict:
                raise ResourceExhausted(f"dataset_path {quoted(dataset_path)}: {exc}") from None
            log.warning("schedule_dataset_too_large", path=dataset_path, error=str(exc))
            observed = None
        except Exception as exc:  # pyarrow and gzip raise several unrelated types
            if strict:
                raise InvalidArgument(f"dataset_path {quoted(dataset_path)} cannot be read: "
                                      f"{exc}") from None
            log.warning("schedule_dataset_unreadable", path=dataset_path, error=str(exc))
            observed = None
        self._seen[dataset_path] = (stamp, observed)
        return observed


Stamp = tuple[tuple[str, int, int], ...]


def _size_mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def count_files_rows(files: list[Path], max_bytes: int) -> int:
    """The data rows of all `files` (count_rows each), reading at most `max_bytes`
    uncompressed bytes over all of them together.

    Raises:
        ResourceExhausted: the files hold more than max_bytes bytes, uncompressed.
    """
    total, budget = 0, max_bytes
    try:
        for path in files:
            read = [0]
            total += count_rows(path, budget, read)
            budget -= read[0]
    except ResourceExhausted:
        if len(files) == 1:
            raise
        raise ResourceExhausted(f"more than max_dataset_bytes={max_bytes} bytes uncompressed "
                                f"in its {len(files)} files together; rows not counted"
                                ) from None
    return total


def count_rows(path: Path, max_bytes: int, read_out: list[int] | None = None) -> int:
    """A dataset's data rows: a CSV's lines minus its header, a JSON Lines file's lines,
    or a Parquet file's num_rows.

    Reads at most `max_bytes` uncompressed bytes, 1 MiB at a time: a small gzip that expands
    without end costs the daemon's scheduler thread bounded time, not minutes.

    Raises:
        ResourceExhausted: the CSV holds more than max_bytes bytes, uncompressed.
    """
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines, last, read = 0, b"\n", 0
    with open_maybe_gzip(path) as fh:
        while chunk := fh.read(1 << 20):
            read += len(chunk)
            if read > max_bytes:
                raise ResourceExhausted(f"more than max_dataset_bytes={max_bytes} bytes "
                                        "uncompressed; rows not counted")
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if read_out is not None:
        read_out[0] = read
    lines += last != b"\n"  # a last line without its newline
    return lines if path.name.lower().endswith(JSONL_SUFFIXES) else max(lines - 1, 0)


def _check_cron(expr: str) -> None:
    if not croniter.is_valid(expr):
        raise InvalidArgument(f"cron {quoted(expr)} is not a valid cron expression")
    try:
        croniter(expr, datetime.now(tz=UTC)).get_next(float)
    except Exception as exc:  # croniter has its own error types for dates that never come
        raise InvalidArgument(f"cron {quoted(expr)} never fires: {exc}") from None


def _data_due(spec: ScheduleSpec, baseline: Baseline | None, observed: Baseline | None) -> bool:
    if not spec.min_new_rows or observed is None:
        return False
    base = baseline or {"sha256": "", "rows": 0}
    return bool(observed["sha256"] != base["sha256"]
                and observed["rows"] >= base["rows"] + spec.min_new_rows)


def _public(state: dict[str, Any]) -> ScheduleState:
    return ScheduleState(next_run_at=state.get("next_run_at"), last_run_at=state.get("last_run_at"),
                         last_outcome=state.get("last_outcome", ""))
