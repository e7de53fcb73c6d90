"""An in-memory index of the registry, kept current by re-scans, so reads never walk the disk.

A re-scan lists version folders (names only) and parses just the manifests it
has not seen; ListVersions and GetStatus then cost the same for 10 or 10,000
versions.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from modeld_server.errors import IntegrityError, ModeldError, NotFound
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.manifest import VersionSummary
from modeld_server.registry.store import RegistryStore

log = structlog.get_logger(__name__)


@dataclass
class ModelEntry:
    """What the index knows about one model."""

    versions: list[int] = field(default_factory=list)
    """Published versions with a readable manifest, ascending."""
    summaries: dict[int, VersionSummary] = field(default_factory=dict)
    active: int = 0
    pointer_error: str = ""


ENCODED_MAX = 64 << 20
"""Bytes of encoded version messages kept (see RegistryIndex.encoded); past it, start over."""


class RegistryIndex:
    """Thread-safe snapshot of every model's versions and active pointer."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._models: dict[str, ModelEntry] = {}
        self._encoded: dict[tuple[str, int, str, str], bytes] = {}
        self._encoded_total = 0

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def entry(self, model: str) -> ModelEntry:
        """The model's entry. Raises NotFound for a model the index does not know."""
        with self._lock:
            entry = self._models.get(model)
        if entry is None:
            raise NotFound(f"model {model!r} not found")
        return entry

    def known(self, model: str) -> str:
        """Checks `model`'s name and that it exists (re-read from disk when the index does
        not know it: another process may have created it since the last scan).

        Raises:
            InvalidArgument: a malformed name.
            NotFound: no such model.
        """
        validate_model_name(model)
        try:
            self.entry(model)
        except NotFound:
            self.refresh([model])
            self.entry(model)
        return model

    def refresh(self, models: list[str] | None = None) -> list[str]:
        """Re-reads the given models (all when None) from disk; returns the models refreshed."""
        names = self.store.models() if models is None else models
        if models is None:
            with self._lock:
                for gone in set(self._models) - set(names):
                    del self._models[gone]
        for name in names:
            self._refresh_one(name)
        return names

    def _refresh_one(self, model: str) -> None:
        if not self.store.paths(model).versions.is_dir():
            with self._lock:
                self._models.pop(model, None)
            return
        with self._lock:
            old = self._models.get(model) or ModelEntry()
        on_disk = self.store.version_numbers(model)
        summaries = {n: s for n, s in old.summaries.items()}
        for number in on_disk:
            if number not in summaries:
                summary = self._read_summary(model, number)
                if summary is not None:
                    summaries[number] = summary
        present = set(on_disk)
        summaries = {n: s for n, s in summaries.items() if n in present}
        entry = ModelEntry(versions=sorted(summaries), summaries=summaries)
        try:
            entry.active = self.store.read_active(model)
        except IntegrityError as exc:
            entry.pointer_error = exc.message
        with self._lock:
            self._models[model] = entry

    def _read_summary(self, model: str, number: int) -> VersionSummary | None:
        try:
            manifest = self.store.read_manifest(model, number)
        except ModeldError as exc:
            # Half-copied or broken: skipped now, read again at the next re-scan.
            log.info("version_skipped", model=model, version=number, reason=exc.message)
            return None
        return manifest.summary

    def page(self, model: str, below: int, size: int) -> list[VersionSummary]:
        """Up to `size` summaries of versions numbered below `below`, newest first."""
        entry = self.entry(model)
        end = bisect.bisect_left(entry.versions, below)
        numbers = entry.versions[max(0, end - size):end][::-1]
        return [entry.summaries[n] for n in numbers]

    def encoded(self, model: str, summary: VersionSummary, build: Callable[[], bytes]) -> bytes:
        """The bytes `build` makes of a version, built once and kept.

        A version's manifest never changes, so its message (less state and aliases, which
        do) is built once and kept serialized: a page of 100 cost 12 ms to convert, field by
        field. Keyed by created_at and job_id too, so a number recreated by another training
        is built anew. `build` runs outside the lock (two threads may both build; the bytes
        are the same).
        """
        key = (model, summary.version, summary.created_at, summary.job_id)
        with self._lock:
            cached = self._encoded.get(key)
        if cached is not None:
            return cached
        data = build()
        with self._lock:
            if self._encoded_total + len(data) > ENCODED_MAX:
                self._encoded.clear()
                self._encoded_total = 0
            if key not in self._encoded:
                self._encoded[key] = data
                self._encoded_total += len(data)
        return data
