"""Keeps each model's active version loaded, and swaps versions without dropping a request.

A reload reads the pointer and manifest, verifies every artifact's size and
sha256, loads, runs a warm-up prediction and only then swaps the reference
Predict reads. In-flight calls keep the model object they started with; the old
one is freed when the last of them returns. Recent versions stay loaded so a
rollback swaps without loading.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from modeld_server.errors import (
    FailedPrecondition,
    IntegrityError,
    ModeldError,
    NotFound,
    Unavailable,
)
from modeld_server.registry import fsio
from modeld_server.registry.index import RegistryIndex
from modeld_server.serving.loaded import LoadedModel
from modeld_server.telemetry import RELOAD_LATENCY, RELOADS
from modeld_server.types import LoadState

log = structlog.get_logger(__name__)

_MAX_BACKOFF = 60.0
_GONE: tuple[object, ...] = ("<missing>",)


@dataclass(kw_only=True)
class Slot:
    """One model in this daemon's memory."""

    current: LoadedModel | None = None
    cache: OrderedDict[int, LoadedModel] = field(default_factory=OrderedDict)
    loading: int = 0
    error: str = ""
    failed_version: int = 0
    failed_fingerprint: tuple[object, ...] = ()
    failures: int = 0
    retry_at: float = 0.0
    integrity: bool = False
    """The failed load met missing or damaged files: retried only when the files change."""
    damaged: str = ""
    """Why the current version's files on disk no longer match what was loaded ("" if they do)."""
    verified: tuple[object, ...] = ()
    """The current version's file stamps (_fingerprint) when last verified."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Serialises loads of this model; Predict never takes it."""


@dataclass(frozen=True)
class ModelView:
    """A consistent reading of one model for GetStatus."""

    model: str
    active: int
    loaded: int
    state: LoadState
    error: str
    current: LoadedModel | None


class ServingManager:
    """Loads, swaps and serves model versions."""

    def __init__(self, index: RegistryIndex, keep_loaded: int = 2, *,
                 load: Callable[..., LoadedModel] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Args:
            load: a test's stand-in for LoadedModel.load (None: LoadedModel.load, looked
                up at each load).
            clock: the clock of the retry backoff (seconds).
        """
        self._load_model = load
        self._clock = clock
        self.index = index
        self.store = index.store
        self._keep = keep_loaded
        self._slots: dict[str, Slot] = {}
        self._slots_lock = threading.Lock()
        self._pointers: fsio.StatCache[int] = fsio.StatCache()

    def _slot(self, model: str) -> Slot:
        with self._slots_lock:
            return self._slots.setdefault(model, Slot())

    # ---- reading (the hot path) -----------------------------------------------------------

    def get(self, model: str, version: int = 0) -> LoadedModel:
        """The loaded model that answers for `model` (pinned `version` when not 0).

        Raises:
            NotFound: unknown model or version.
            FailedPrecondition: the model has no active version.
            IntegrityError: nothing is loaded and the active version's files are missing or
                fail their checksum (permanent until the files change: FAILED_PRECONDITION).
            Unavailable: the active version is not loaded (yet).
        """
        slot = self._slots.get(model)
        current = slot.current if slot is not None else None
        if version == 0 or (current is not None and current.version == version):
            if current is not None:
                return current
            entry = self.index.entry(model)
            if not entry.active:
                raise FailedPrecondition(f"model {model!r} has no active version")
            if slot is not None and slot.integrity and slot.failed_version == entry.active:
                raise IntegrityError(f"model {model!r} v{entry.active} cannot be served: "
                                     f"{slot.error}")
            raise Unavailable(f"model {model!r} v{entry.active} is not loaded yet: "
                              f"{(slot.error if slot else '') or 'loading'}")
        cached = slot.cache.get(version) if slot is not None else None
        return cached if cached is not None else self._load_pinned(model, version)

    def _load_pinned(self, model: str, version: int) -> LoadedModel:
        if version not in self.index.entry(model).summaries:
            raise NotFound(f"version {version} of model {model!r} not found")
        slot = self._slot(model)
        with slot.lock:
            loaded = slot.cache.get(version) or self._load(model, version)
            self._remember(slot, loaded)
        return loaded

    def loaded_versions(self, model: str) -> set[int]:
        """Versions in memory or being loaded (retention must not delete them)."""
        slot = self._slot(model)
        return set(slot.cache) | ({slot.loading} if slot.loading else set())

    def answering(self, model: str) -> list[int]:
        """Versions loaded in memory, that answer Predict without a load first; ascending."""
        slot = self._slots.get(model)
        return sorted(slot.cache) if slot is not None else []

    def view(self, model: str) -> ModelView:
        """The model as it stands: the pointer is read from disk (a stat, and the file when
        that changed), so a change nobody has reloaded yet shows as STALE, not hidden."""
        entry = self.index.entry(model)
        slot = self._slot(model)
        current = slot.current
        loaded = current.version if current else 0
        try:
            active, pointer_error = self._pointer(model), ""
        except ModeldError as exc:
            active, pointer_error = entry.active, exc.message
        if pointer_error:
            state, error = LoadState.FAILED, pointer_error
        elif not active:
            state, error = LoadState.NO_ACTIVE_VERSION, ""
        elif slot.loading == active:
            state, error = LoadState.LOADING, slot.error
        elif slot.failed_version == active:
            state, error = LoadState.FAILED, slot.error
        elif loaded == active and slot.damaged:
            state, error = LoadState.DEGRADED, slot.damaged
        elif loaded == active:
            state, error = LoadState.READY, ""
        else:
            state, error = LoadState.STALE, slot.error
        return ModelView(model, active, loaded, state, error, current)

    def _pointer(self, model: str) -> int:
        """store.read_active(model), the file re-read only when a stat of it changes."""
        return self._pointers.get(self.store.paths(model).active,
                                  lambda: self.store.read_active(model))

    # ---- reconciling with the disk --------------------------------------------------------

    def poll_once(self, models: list[str] | None = None, *, force: bool = False) -> None:
        """Re-scans the registry and brings each model's loaded version to the active one.

        Args:
            models: the models to look at; all when None.
            force: retry failed loads now, ignoring their backoff.
        """
        names = self.index.refresh(models)
        if len(names) > 1:
            with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
                list(pool.map(lambda name: self._reconcile(name, force), names))
        else:
            for name in names:
                self._reconcile(name, force)

    def preload(self, model: str, version: int) -> None:
        """Loads `version` into the cache without serving it (a rollback's first step).

        Raises:
            FailedPrecondition: it cannot be loaded (the reason included).
        """
        slot = self._slot(model)
        with slot.lock:
            if version in slot.cache:
                slot.cache.move_to_end(version)
                return
            try:
                loaded = self._load(model, version)
            except ModeldError as exc:
                raise FailedPrecondition(f"model {model!r} v{version} cannot be loaded: "
                                         f"{exc.message}") from None
            except Exception as exc:  # a broken pickle raises anything at all
                raise FailedPrecondition(f"model {model!r} v{version} cannot be loaded: "
                                         f"{type(exc).__name__}: {exc}") from None
            self._remember(slot, loaded)

    def activate(self, model: str, version: int) -> None:
        """Makes `version` the one answering now (from the cache when preloaded)."""
        slot = self._slot(model)
        with slot.lock:
            self._swap_to(model, slot, version)

    def _reconcile(self, model: str, force: bool) -> None:
        try:
            entry = self.index.entry(model)
        except NotFound:
            with self._slots_lock:
                self._slots.pop(model, None)
            return
        if not entry.active or entry.pointer_error:
            return
        slot = self._slot(model)
        with slot.lock:
            current = slot.current
            if current is not None and current.version == entry.active:
                self._check_disk(model, slot, current)
                return
            if slot.failed_version == entry.active and not force and not self._should_retry(
                model, slot, entry.active
            ):
                return
            self._swap_to(model, slot, entry.active)

    def _should_retry(self, model: str, slot: Slot, version: int) -> bool:
        if self._fingerprint(model, version) != slot.failed_fingerprint:
            return True  # the files changed: always try again
        # Damaged files stay damaged: re-hashing them on a timer would find the same.
        return not slot.integrity and self._clock() >= slot.retry_at

    def _check_disk(self, model: str, slot: Slot, current: LoadedModel) -> None:
        """Re-verifies the serving version's files when their stamps moved since the last
        check (a stat of each file per poll; checksums only on a change), so a folder
        deleted or bytes changed in place show as DEGRADED. Caller holds slot.lock."""
        stamps = self._fingerprint(model, current.version)
        if stamps == slot.verified:
            return
        slot.verified = stamps
        try:
            self.store.verify(model, current.version,
                              self.store.read_manifest(model, current.version))
        except ModeldError as exc:
            slot.damaged = self._damage(model, current.version, exc)
            RELOADS.labels(model, "damaged").inc()
            log.error("active_version_damaged", model=model, version=current.version,
                      reason=slot.damaged)
            return
        if slot.damaged:
            log.info("active_version_repaired", model=model, version=current.version)
        slot.damaged = ""

    def _damage(self, model: str, version: int, exc: ModeldError) -> str:
        """What is wrong with a version's files, naming the folder when it is gone."""
        folder = self.store.paths(model).version(version)
        if not folder.is_dir():
            return f"model {model!r} v{version}: folder {folder} is missing"
        return exc.message

    def _swap_to(self, model: str, slot: Slot, version: int) -> None:
        """Loads (or takes from the cache) and swaps in `version`. Caller holds slot.lock."""
        loaded = slot.cache.get(version)
        if loaded is None:
            slot.loading = version
            try:
                loaded = self._load(model, version)
            except (IntegrityError, NotFound) as exc:
                self._failed(model, slot, version, self._damage(model, version, exc),
                             integrity=True)
                return
            except ModeldError as exc:
                self._failed(model, slot, version, exc.message)
                return
            except Exception as exc:  # a broken pickle raises anything at all
                self._failed(model, slot, version, f"{type(exc).__name__}: {exc}")
                return
            finally:
                slot.loading = 0
        previous = slot.current
        slot.current = loaded
        slot.error, slot.failed_version, slot.failures = "", 0, 0
        slot.integrity, slot.damaged, slot.verified = False, "", loaded.fingerprint
        self._remember(slot, loaded)
        log.info("model_swapped", model=model, version=version,
                 previous=previous.version if previous else 0, load_ms=round(loaded.load_ms, 2))

    def _load(self, model: str, version: int) -> LoadedModel:
        started = time.perf_counter()
        stamps = self._fingerprint(model, version)  # before reading: a change during it shows
        manifest = self.store.read_manifest(model, version)
        self.store.verify(model, version, manifest)
        folder = self.store.paths(model).version(version)
        load = LoadedModel.load if self._load_model is None else self._load_model
        loaded = load(model, version, folder, manifest)
        seconds = time.perf_counter() - started
        loaded.load_ms = seconds * 1000
        loaded.fingerprint = stamps
        RELOADS.labels(model, "ok").inc()
        RELOAD_LATENCY.observe(seconds)
        return loaded

    def _failed(self, model: str, slot: Slot, version: int, reason: str, *,
                integrity: bool = False) -> None:
        slot.failures = slot.failures + 1 if slot.failed_version == version else 1
        slot.failed_version, slot.error, slot.integrity = version, reason, integrity
        slot.failed_fingerprint = self._fingerprint(model, version)
        slot.retry_at = self._clock() + min(_MAX_BACKOFF, 0.5 * 2 ** slot.failures)
        RELOADS.labels(model, "failed").inc()
        log.warning("model_load_failed", model=model, version=version, reason=reason,
                    failures=slot.failures)

    def _remember(self, slot: Slot, loaded: LoadedModel) -> None:
        slot.cache[loaded.version] = loaded
        slot.cache.move_to_end(loaded.version)
        while len(slot.cache) > self._keep + 1:
            oldest = next(iter(slot.cache))
            if slot.current is not None and oldest == slot.current.version:
                slot.cache.move_to_end(oldest)
                continue
            del slot.cache[oldest]

    def _fingerprint(self, model: str, version: int) -> tuple[object, ...]:
        """Names, sizes, mtimes and ctimes of a version's files: a change means 'look again'
        (ctime too, since an in-place write can put the mtime back, but not the ctime).
        A folder being deleted gives what is left of it; a missing one, _GONE."""
        folder = self.store.paths(model).version(version)
        stats = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # deleted since the listing
                    stats.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError:
            return _GONE
        return tuple(sorted(stats))
