"""Live drift: Predict samples rows into a bounded buffer, a background step compares them.

The request path only copies: a sampled call takes a lock, appends its rows (and the
model's answers) to the model's buffer, or counts them as dropped when the buffer is full;
it never waits on the computation. step() (a daemon thread every monitor_interval seconds,
or the test by hand) drains the buffers into tumbling windows of `window` rows (or fewer,
at least a tenth of them, once a window has been open `window_seconds`) and, for each
closed window, bins every feature and the output as the version's reference profile
does (profile.py) and compares them: PSI for numbers, Jensen-Shannon distance for
categories. A window belongs to one version: rows of another version start a new one.

Each daemon monitors the traffic it serves; reports name the replica.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np
import structlog

from modeld_server.monitoring import profile as profiles
from modeld_server.monitoring.report import (
    ALERT,
    NO_PROFILE,
    OK,
    PENDING,
    DriftReport,
    Thresholds,
    drift_of,
    model_status,
)

log = structlog.get_logger(__name__)

@dataclass
class _Chunk:
    loaded: Any  # the LoadedModel that answered
    rows: np.ndarray
    outputs: np.ndarray | None


class _Buffer:
    """A model's sampled rows awaiting step(); bounded, never blocking for long."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: list[_Chunk] = []
        self.rows = 0
        self.sampled = 0
        self.dropped = 0


@dataclass
class _Window:
    loaded: Any
    _: KW_ONLY
    pending: list[_Chunk] = field(default_factory=list)
    rows: int = 0
    last: DriftReport | None = None
    alerted: bool = False
    windows: int = 0
    opened_at: float | None = None
    """When the window being filled took its first row (the monitor's clock)."""


class DriftMonitor:
    """Samples Predict traffic per model and computes drift off the request path."""

    def __init__(self, *, rate: float, window: int, capacity: int, replica: str,
                 thresholds_for: Callable[[str], Thresholds],
                 on_alert: Callable[[DriftReport], None] = lambda report: None,
                 interval: float = 5.0,
                 rate_for: Callable[[str], float | None] = lambda model: None,
                 window_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.window, self.capacity, self.replica = rate, window, capacity, replica
        self.window_seconds, self._clock = window_seconds, clock
        self.min_timed_rows = max(1, window // 10)
        """The fewest rows a window closed by time holds (fewer: it waits for more)."""
        self._rate_for = rate_for
        self._rates: dict[str, float] = {}
        """Each model's rate (its policy's, else `rate`), read once and refreshed by step()."""
        self._thresholds_for, self._on_alert, self._interval = thresholds_for, on_alert, interval
        self._buffers: dict[str, _Buffer] = {}
        self._windows: dict[str, _Window] = {}
        self._new_buffer = threading.Lock()
        self._step_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.random

    # ---- the request path ----------------------------------------------------------------

    def offer(self, model: str, loaded: Any, matrix: np.ndarray, outputs: np.ndarray | None
              ) -> None:
        """Copies a sample of a Predict's rows (and its outputs) into the model's buffer."""
        rate = self._rates.get(model)
        if rate is None:
            rate = self._rates[model] = self._model_rate(model)
        if rate <= 0:
            return
        n = len(matrix)
        if n == 1:
            if rate < 1 and self._random() >= rate:
                return
            rows, outs = matrix.copy(), None if outputs is None else outputs.copy()
        else:
            if rate < 1:
                picked = np.flatnonzero(np.random.random(n) < rate)
                if not len(picked):
                    return
                rows, outs = matrix[picked], None if outputs is None else outputs[picked]
            else:
                rows, outs = matrix.copy(), None if outputs is None else outputs.copy()
        buffer = self._buffers.get(model) or self._buffer(model)
        with buffer.lock:
            buffer.sampled += len(rows)
            if buffer.rows + len(rows) > self.capacity:
                buffer.dropped += len(rows)
                return
            buffer.chunks.append(_Chunk(loaded, rows, outs))
            buffer.rows += len(rows)

    def rate_of(self, model: str) -> float:
        """The model's sampling rate as offer() applies it."""
        rate = self._rates.get(model)
        return self._model_rate(model) if rate is None else rate

    def set_rate(self, model: str, rate: float | None) -> None:
        """A new policy rate (None: the daemon's), applied from the next call."""
        self._rates[model] = self.rate if rate is None else rate

    def _model_rate(self, model: str) -> float:
        try:
            rate = self._rate_for(model)
        except Exception:  # an unreadable policy samples at the daemon's rate
            log.exception("monitor_rate_unreadable", model=model)
            rate = None
        return self.rate if rate is None else rate

    def _buffer(self, model: str) -> _Buffer:
        with self._new_buffer:
            return self._buffers.setdefault(model, _Buffer())

    # ---- the background step -------------------------------------------------------------

    def step(self) -> list[DriftReport]:
        """Drains every buffer and computes each full window; returns the new reports."""
        with self._step_lock:
            for model in list(self._rates):  # another replica may have set a policy
                self._rates[model] = self._model_rate(model)
            out: list[DriftReport] = []
            for model, buffer in list(self._buffers.items()):
                with buffer.lock:
                    chunks, buffer.chunks, buffer.rows = buffer.chunks, [], 0
                for chunk in chunks:
                    out.extend(self._take(model, chunk))
            for model, state in list(self._windows.items()):
                if self._timed_out(state):
                    rows, outputs = _take_rows(state, state.rows)
                    out.append(self._compute(model, state, rows, outputs))
            return out

    def _timed_out(self, state: _Window) -> bool:
        return bool(self.window_seconds and state.opened_at is not None
                    and state.rows >= self.min_timed_rows
                    and self._clock() - state.opened_at >= self.window_seconds)

    def _take(self, model: str, chunk: _Chunk) -> list[DriftReport]:
        state = self._windows.get(model)
        if state is None or state.loaded.version != chunk.loaded.version:
            state = self._windows[model] = _Window(chunk.loaded)
        if not state.rows:
            state.opened_at = self._clock()
        state.pending.append(chunk)
        state.rows += len(chunk.rows)
        reports = []
        while state.rows >= self.window:
            rows, outputs = _take_rows(state, self.window)
            report = self._compute(model, state, rows, outputs)
            reports.append(report)
            state.opened_at = self._clock() if state.rows else None
        return reports

    def _compute(self, model: str, state: _Window, rows: np.ndarray,
                 outputs: np.ndarray | None) -> DriftReport:
        loaded = state.loaded
        thresholds = self._thresholds_for(model)
        state.windows += 1
        report = DriftReport(model, loaded.version, replica=self.replica, window_size=len(rows),
                             windows=state.windows, computed_at=time.time(),
                             thresholds=thresholds)
        reference = loaded.manifest.profile
        if not reference:
            report.status = NO_PROFILE
            state.last = report
            return report
        schema = loaded.schema
        for j, name in enumerate(schema.columns):
            report.features.append(drift_of(name, reference["features"][name], rows[:, j],
                                          thresholds))
        if outputs is not None and reference.get("output"):
            seen = profiles.output_values(loaded.task.value, loaded.classes, outputs, outputs)
            report.prediction = drift_of("prediction", reference["output"], seen, thresholds)
        drifted = [f for f in report.features if f.status != OK]
        report.drifted_share = len(drifted) / max(len(report.features), 1)
        report.status = model_status(report, thresholds)
        state.last = report
        crossed = report.status == ALERT and not state.alerted
        state.alerted = report.status == ALERT
        log.info("drift_window", model=model, version=loaded.version, status=report.status,
                 alerting=report.alerting, drifted_share=report.drifted_share)
        if crossed:
            try:
                self._on_alert(report)
            except Exception:  # an alert hook must not stop monitoring
                log.exception("drift_alert_hook_failed", model=model)
        return report

    # ---- reading -------------------------------------------------------------------------

    def report(self, model: str, version: int) -> DriftReport:
        """The latest report of `version` (the one serving), with the live counters."""
        buffer = self._buffers.get(model)
        state = self._windows.get(model)
        if state is not None and state.loaded.version == version and state.last is not None:
            report = DriftReport(**{**state.last.__dict__})
        else:
            report = DriftReport(model, version, replica=self.replica, window_size=self.window,
                                 thresholds=self._thresholds_for(model))
        if state is not None and state.loaded.version == version:
            report.window_rows = state.rows
        if buffer is not None:
            report.sampled, report.dropped = buffer.sampled, buffer.dropped
        return report

    def status(self, model: str, version: int) -> str:
        """The status of `version`'s last window (pending before one), reading no policy."""
        state = self._windows.get(model)
        if state is None or state.loaded.version != version or state.last is None:
            return PENDING
        return state.last.status

    def latest(self) -> dict[str, DriftReport]:
        """Each model's last computed report (for the Prometheus gauges)."""
        return {m: s.last for m, s in self._windows.items() if s.last is not None}

    # ---- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Steps every `interval` seconds on a daemon thread (none when interval is 0)."""
        if self._interval > 0 and self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="modeld-drift", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.step()
            except Exception:  # e.g. a manifest without what we expect: try the next round
                log.exception("drift_step_failed")


def _take_rows(state: _Window, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first `n` pending rows (and outputs) of the window, removed from it."""
    rows = np.concatenate([c.rows for c in state.pending])
    has_outputs = all(c.outputs is not None for c in state.pending)
    outputs = (np.concatenate([c.outputs for c in state.pending if c.outputs is not None])
               if has_outputs else None)
    state.pending = [_Chunk(state.loaded, rows[n:], None if outputs is None else outputs[n:])]
    state.rows = len(rows) - n
    if not state.rows:
        state.pending = []
    return rows[:n], None if outputs is None else outputs[:n]
