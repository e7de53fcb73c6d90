"""Follows the registry on disk: file-system events, debounced, plus a periodic re-scan.

Events only say which models changed; the reload itself is ServingManager.poll_once,
which reads the final state, so a burst of writes causes one reload. The re-scan
is the safety net for filesystems whose events do not arrive (NFS) and for
retrying failed loads with backoff.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from modeld_server.registry.layout import STAGING
from modeld_server.serving.manager import ServingManager

log = structlog.get_logger(__name__)

# Events that change nothing on disk (opening a file, closing one not written).
_IGNORED = {"opened", "closed_no_write"}
# What is asked of inotify: writes only. Reads must not even queue an event: the daemon
# reads every manifest at start-up and lists folders on each re-scan, and with 10,000
# versions those opens overflowed the kernel's queue; watchdog answers an overflow by
# walking the tree again, whose own opens overflowed it again, a loop that kept a core busy.
_WRITES = [FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent,
           FileClosedEvent, DirCreatedEvent, DirModifiedEvent, DirDeletedEvent, DirMovedEvent]


# When a watched folder is renamed (a staging folder published as a version), watchdog may
# add a watch for its new path while inotify still has the folder's watch: it replaces its
# own callback with the same one and warns, with the repr of its watch tables (a line of
# ~1 KB per publish in the daemon's log as a warning). Nothing is lost: the events carry on.
warnings.filterwarnings("ignore", message=r"Callback with id .* already exists for watch",
                        category=RuntimeWarning, module=r"watchdog\.")


class RegistryWatcher:
    """Drives ServingManager.poll_once from disk events and a timer; steppable in tests."""

    def __init__(self, server: ServingManager, root: Path, *, watch: bool = True,
                 poll_interval: float = 2.0, debounce: float = 0.005,
                 sweep: Callable[[], object] | None = None) -> None:
        self._server = server
        # Run with each re-scan: staging folders a dead builder left (store's
        # clean_stale_staging) go once the last process holding their lock is gone, which
        # after a crash can be a while after the start-up sweep.
        self._sweep = sweep
        self._root = root.resolve()
        self._watch = watch
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._dirty: set[str] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None

    def poll_once(self, models: list[str] | None = None) -> None:
        """One reconcile pass (all models when None), as the background loop would do."""
        self._server.poll_once(models)

    def start(self) -> None:
        if self._watch:
            observer = Observer()
            observer.schedule(_Handler(self), str(self._root), recursive=True,
                              event_filter=_WRITES)
            observer.daemon = True
            try:
                observer.start()
                self._observer = observer
            except OSError as exc:
                # inotify's watch or instance limit (fs.inotify.max_user_watches): the
                # re-scan alone keeps the daemon current, only later.
                log.warning("registry_watch_unavailable", error=str(exc),
                            poll_interval=self._poll_interval)
        self._thread = threading.Thread(target=self._loop, name="registry-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def notice(self, path: str) -> None:
        """Marks the model a changed path belongs to as dirty."""
        try:
            parts = Path(path).resolve().relative_to(self._root).parts
        except ValueError:
            return
        if not parts or parts[0].startswith(".") or STAGING in parts:
            return
        with self._wake:
            self._dirty.add(parts[0])
            self._wake.notify_all()

    def _loop(self) -> None:
        next_scan = time.monotonic() + self._poll_interval
        while True:
            with self._wake:
                timeout = next_scan - time.monotonic() if self._poll_interval > 0 else None
                if not self._dirty and not self._stopped:
                    self._wake.wait(timeout if timeout is None else max(0.0, timeout))
                if self._stopped:
                    return
            # Let a burst of writes settle so one reload sees the final state.
            time.sleep(self._debounce)
            with self._wake:
                dirty, self._dirty = sorted(self._dirty), set()
            try:
                if dirty:
                    self._server.poll_once(dirty)
                if self._poll_interval > 0 and time.monotonic() >= next_scan:
                    self._server.poll_once(None)
                    if self._sweep is not None:
                        self._sweep()
                    next_scan = time.monotonic() + self._poll_interval
            except Exception:  # the loop must survive anything one pass meets
                log.exception("registry_poll_failed")


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: RegistryWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED:
            return
        self._watcher.notice(str(event.src_path))
        dest = getattr(event, "dest_path", "")
        if dest:
            self._watcher.notice(str(dest))
