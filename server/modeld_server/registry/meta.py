"""Small per-model documents beside the versions: policy.json, aliases.json, schedule.json.

Each is replaced atomically under the model's lock; aliases support compare-and-set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from modeld_server.errors import FailedPrecondition, InvalidArgument, NotFound
from modeld_server.registry import fsio
from modeld_server.registry.store import RegistryStore

ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
POLICY, ALIASES, SCHEDULE = "policy.json", "aliases.json", "schedule.json"


class ModelMeta:
    """Reads and writes the documents of one registry's models."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._raw: fsio.StatCache[bytes | None] = fsio.StatCache()

    def read(self, model: str, name: str) -> dict[str, Any] | None:
        """A document, parsed afresh (callers may change it); its bytes are read only when
        the file changed (GetStatus asks for aliases and schedule on every call)."""
        path = self.store.paths(model).root / name
        raw = self._raw.get(path, lambda: _read_or_none(path))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None  # a hand-broken document reads as absent; the next write repairs it
        return data if isinstance(data, dict) else None

    def write(self, model: str, name: str, data: dict[str, Any] | None, event: str,
              **fields: Any) -> None:
        """Replaces (or with None deletes) a document under the lock, and logs the change."""
        paths = self.store.paths(model)
        paths.root.mkdir(parents=True, exist_ok=True)
        with fsio.file_lock(paths.lock):
            self.write_unlocked(model, name, data)
            self.store.append_event(model, event, **fields)

    def event(self, model: str, event: str, **fields: Any) -> None:
        """Appends an event to the model's log, under the lock."""
        with fsio.file_lock(self.store.paths(model).lock):
            self.store.append_event(model, event, **fields)

    def write_unlocked(self, model: str, name: str, data: dict[str, Any] | None) -> None:
        """Replaces (None: deletes) a document; the caller holds the model lock."""
        path = self.store.paths(model).root / name
        if data is None:
            path.unlink(missing_ok=True)
            fsio.fsync_dir(path.parent)
        else:
            fsio.write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    # ---- aliases --------------------------------------------------------------------------

    def aliases(self, model: str) -> dict[str, int]:
        data = self.read(model, ALIASES) or {}
        return {k: int(v) for k, v in data.items() if isinstance(v, int)}

    def set_alias(self, model: str, alias: str, version: int,
                  expected: int | None = None) -> None:
        """Points `alias` at `version`; with `expected`, only if it points there now (0: absent).

        Raises:
            InvalidArgument: a bad alias name. NotFound: no such version.
            FailedPrecondition: the alias moved.
        """
        check_alias(alias)
        paths = self.store.require_model(model)
        with fsio.file_lock(paths.lock):
            self.store.read_manifest(model, version)
            current = self.aliases(model)
            previous = current.get(alias, 0)  # 0: the alias is new
            self._compare(model, alias, previous, expected)
            current[alias] = version
            self.write_unlocked(model, ALIASES, current)
            self.store.append_event(model, "alias_set", alias=alias, version=version,
                                    previous=previous)

    def delete_alias(self, model: str, alias: str, expected: int | None = None) -> int:
        """Removes `alias`; returns the version it pointed at."""
        check_alias(alias)
        paths = self.store.require_model(model)
        with fsio.file_lock(paths.lock):
            current = self.aliases(model)
            if alias not in current:
                raise NotFound(f"alias {alias!r} of model {model!r} not found")
            self._compare(model, alias, current[alias], expected)
            version = current.pop(alias)
            self.write_unlocked(model, ALIASES, current)
            self.store.append_event(model, "alias_deleted", alias=alias, version=version)
        return version

    @staticmethod
    def _compare(model: str, alias: str, actual: int, expected: int | None) -> None:
        if expected is not None and actual != expected:
            where = f"version {actual}" if actual else "nothing"
            raise FailedPrecondition(f"alias {alias!r} of model {model!r} points at {where}, "
                                     f"not the expected version {expected}")


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias or ""):
        raise InvalidArgument(f"alias {alias[:80]!r} is not valid: use [a-z][a-z0-9_-]*, "
                              "at most 63 characters")
    return alias


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
