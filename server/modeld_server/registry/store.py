"""The file registry: atomic publishing, the active pointer, the event log.

Writers serialise on the model's OS file lock; readers never lock. A version is
built in <model>/.staging, fsynced, then renamed into versions/<n> under the
lock, so a reader (or a crash) sees no version or a complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from modeld_server.errors import FailedPrecondition, IntegrityError, NotFound
from modeld_server.registry import fsio
from modeld_server.registry.layout import (
    MANIFEST,
    STAGING,
    ModelPaths,
    is_model_name,
    model_paths,
    parse_version_dir,
    validate_model_name,
)
from modeld_server.registry.manifest import MANIFEST_SCHEMA, Manifest

log = structlog.get_logger(__name__)


# Matched on bytes, not text: str.isdigit accepts '²', and decoding fails on non-UTF-8.
# A version number: no sign, no leading zero, within the proto's int64 (18 digits is plenty).
_POINTER_RE = re.compile(rb"[1-9][0-9]{0,17}")


@dataclass(frozen=True)
class Published:
    """What publish did: the version exists whatever `activated` says."""

    version: int
    activated: bool
    not_activated: str = ""
    """Why a version asked to be activated was not (the pointer could not be written)."""


@dataclass
class Staging:
    """A version under construction; its lock fd marks it as alive for the stale-staging sweep."""

    model: str
    path: Path
    lock_path: Path
    lock_fd: int | None

    def discard(self) -> None:
        """Removes what was built and releases the lock (safe to call twice).

        A `.staging` folder left empty goes too, and the model folder with it when nothing
        else is in it (a first Train that failed), so a failure leaves no trace.
        """
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()
        _prune(self.path.parent)

    def _release(self) -> None:
        if self.lock_fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self.lock_fd)
            self.lock_fd = None


class RegistryStore:
    """Reads and writes one registry root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def paths(self, model: str) -> ModelPaths:
        return model_paths(self.root, validate_model_name(model))

    # ---- reading -------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of the models in the registry (folders with a versions/ folder), sorted.

        A folder whose name is not a valid model name (a hand-made 'spam copy', a
        dot-folder) is skipped: paths() would refuse it, failing whoever lists models.
        """
        with os.scandir(self.root) as entries:
            names = [entry.name for entry in entries
                     if is_model_name(entry.name) and entry.is_dir()
                     and os.path.isdir(os.path.join(entry.path, "versions"))]
        return sorted(names)

    def require_model(self, model: str) -> ModelPaths:
        paths = self.paths(model)
        if not paths.versions.is_dir():
            raise NotFound(f"model {model!r} not found")
        return paths

    def version_numbers(self, model: str) -> list[int]:
        """Every published version number of a model, ascending."""
        paths = self.paths(model)
        try:
            entries = os.listdir(paths.versions)
        except FileNotFoundError:
            return []
        numbers = (parse_version_dir(name) for name in entries)
        return sorted(n for n in numbers if n is not None)

    def read_manifest(self, model: str, version: int) -> Manifest:
        """The parsed manifest of a version.

        Raises:
            NotFound: the version folder or its manifest does not exist.
            IntegrityError: the manifest is not valid JSON, does not describe this version,
                or holds a known key of the wrong type.
            FailedPrecondition: it was written by a newer schema than this daemon reads.
        """
        path = self.paths(model).manifest(version)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"version {version} of model {model!r} not found") from None
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{path} is not valid JSON: {exc}") from None
        # The type checked with `is`: JSON true and 1.0 both compare equal to 1 in Python.
        if not (isinstance(manifest, dict) and type(manifest.get("version")) is int
                and manifest["version"] == version):
            raise IntegrityError(f"{path} does not describe version {version}")
        return Manifest.from_json(manifest, str(path))

    def read_active(self, model: str) -> int:
        """The active version number, 0 when the model has none.

        Raises:
            IntegrityError: the pointer holds anything but a version number (ASCII digits,
                no leading zero, at most 18 of them) and whitespace.
        """
        path = self.paths(model).active
        try:
            raw = path.read_bytes().strip()
        except FileNotFoundError:
            return 0
        if _POINTER_RE.fullmatch(raw):
            return int(raw)
        shown = raw.decode("utf-8", errors="replace")[:40]
        raise IntegrityError(f"{path} holds {shown!r}, not a version number")

    def read_events(self, model: str) -> list[dict[str, Any]]:
        """The model's event log, oldest first; a torn last line (a crash mid-append) is skipped."""
        try:
            lines = self.paths(model).events.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def previous_active(self, model: str, current: int) -> int:
        """The version that was active before `current`, from the event log; 0 if none."""
        for event in reversed(self.read_events(model)):
            if event.get("event") not in ("activated", "rolled_back", "promoted"):
                continue
            if event.get("version") == current:
                return int(event.get("previous") or 0)
            # The pointer was changed by hand after this event: what the log last
            # activated is what was active before.
            return int(event.get("version") or 0)
        return 0

    def verify(self, model: str, version: int, manifest: Manifest) -> None:
        """Checks every artifact's size and SHA-256 against the manifest.

        Raises:
            IntegrityError: naming the first file that is missing or differs.
        """
        folder = self.paths(model).version(version)
        artifacts = manifest.artifacts
        if not artifacts:
            raise IntegrityError(f"manifest of {model!r} v{version} lists no artifacts")
        for name, meta in artifacts.items():
            path = folder / name
            if "/" in name or name.startswith("."):
                raise IntegrityError(f"manifest of {model!r} v{version} names bad file {name!r}")
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise IntegrityError(f"{model!r} v{version}: artifact {name} is missing") from None
            if size != meta.get("size"):
                raise IntegrityError(
                    f"{model!r} v{version}: artifact {name} has {size} bytes, "
                    f"manifest says {meta.get('size')}"
                )
            if fsio.sha256_file(path) != meta.get("sha256"):
                raise IntegrityError(f"{model!r} v{version}: artifact {name} fails its sha256")

    # ---- writing -------------------------------------------------------------------------

    def begin_staging(self, model: str) -> Staging:
        """Creates an empty staging folder for a new version of `model`.

        Its lock is shared (see fsio.hold_builder_lock): the worker process that fills the
        folder holds it too, so a sweep spares the folder until the daemon and the worker
        are both gone.
        """
        paths = self.paths(model)
        token = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        lock_path = paths.staging / f"{token}.lock"
        while True:
            paths.staging.mkdir(parents=True, exist_ok=True)
            try:
                fd = fsio.shared_lock(lock_path)
                break
            except FileNotFoundError:
                continue  # a discard removed the empty .staging between mkdir and open
        path = paths.staging / token
        path.mkdir()
        return Staging(model=model, path=path, lock_path=lock_path, lock_fd=fd)

    def publish(
        self,
        staging: Staging,
        manifest: dict[str, Any],
        *,
        activate: bool,
        job_id: str = "",
    ) -> Published:
        """Turns a staging folder into the next version, atomically.

        Writes the manifest (with the allocated number and every artifact's size and
        sha256), fsyncs, renames into versions/<n> under the model lock, logs the
        event, and moves the active pointer when `activate`.

        The rename is the moment of truth: before it nothing is published (an error
        propagates and the caller discards the staging folder); after it the version is
        complete and published, so a later failure (the event log or the pointer on a
        full or read-only disk) is reported in the result, never raised.

        Returns:
            The new version number, and whether it was activated (and if not, why).
        """
        paths = self.paths(staging.model)
        paths.versions.mkdir(parents=True, exist_ok=True)
        artifacts = {}
        for file in sorted(staging.path.iterdir()):
            fsio.fsync_file(file)
            artifacts[file.name] = {"size": file.stat().st_size, "sha256": fsio.sha256_file(file)}
        with fsio.file_lock(paths.lock):
            numbers = self.version_numbers(staging.model)
            version = (numbers[-1] if numbers else 0) + 1
            body = dict(manifest, manifest_schema=MANIFEST_SCHEMA, model=staging.model,
                        version=version)
            body["artifacts"] = artifacts
            Manifest.from_json(body, "the new manifest")  # what no reader could read is a bug
            manifest_path = staging.path / MANIFEST
            manifest_path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
            fsio.fsync_file(manifest_path)
            fsio.fsync_dir(staging.path)
            os.rename(staging.path, paths.version(version))
            result = self._after_rename(paths, staging.model, version, body,
                                        activate=activate, job_id=job_id)
        staging.discard()
        log.info("version_published", model=staging.model, version=version,
                 state=body.get("state", "available"), activated=result.activated)
        return result

    def _after_rename(self, paths: ModelPaths, model: str, version: int, body: dict[str, Any],
                      *, activate: bool, job_id: str) -> Published:
        """Logs and activates a version already in place; a disk error here un-publishes
        nothing: it is logged, and an unwritten pointer is reported as not activated."""
        try:
            fsio.fsync_dir(paths.versions)
        except OSError as exc:
            log.error("publish_not_synced", model=model, version=version, error=str(exc))
        try:
            self._append_event(paths, "published", version=version, job_id=job_id)
        except OSError as exc:
            log.error("publish_event_not_logged", model=model, version=version, error=str(exc))
        if body.get("state") == "rejected":
            gate = body.get("gate") or {}
            with contextlib.suppress(OSError):
                self._append_event(paths, "rejected", version=version, job_id=job_id,
                                   reason="; ".join(gate.get("reasons", [])))
            return Published(version, activated=False)
        if not activate:
            return Published(version, activated=False)
        previous = self._read_active_unlocked(model)
        try:
            self._write_active(paths, version)
        except OSError as exc:
            reason = f"could not write {paths.active}: {exc.strerror or exc}"
            log.error("version_not_activated", model=model, version=version, reason=reason)
            return Published(version, activated=False, not_activated=reason)
        try:
            self._append_event(paths, "activated", version=version, previous=previous,
                               job_id=job_id)
        except OSError as exc:  # the pointer is the truth; the log only tells the story
            log.error("activate_event_not_logged", model=model, version=version, error=str(exc))
        return Published(version, activated=True)

    def set_active(
        self,
        model: str,
        version: int,
        *,
        event: str,
        reason: str = "",
        expected_active: int = 0,
    ) -> int:
        """Points ACTIVE at `version` under the lock and logs why; returns the previous one.

        Raises:
            NotFound: the version does not exist.
            FailedPrecondition: `expected_active` is set and is not the active version.
        """
        paths = self.require_model(model)
        with fsio.file_lock(paths.lock):
            self.read_manifest(model, version)
            previous = self._read_active_unlocked(model)
            if expected_active and previous != expected_active:
                raise FailedPrecondition(
                    f"expected_active_version is {expected_active} but version {previous} "
                    f"of model {model!r} is active"
                )
            self._write_active(paths, version)
            self._append_event(paths, event, version=version, previous=previous, reason=reason)
        return previous

    def clean_stale_staging(self) -> int:
        """Removes staging folders whose builder is gone (its lock is free); returns how many."""
        removed = 0
        for model_dir in self.root.iterdir():
            staging = model_dir / STAGING
            if model_dir.name.startswith(".") or not staging.is_dir():
                continue
            for entry in staging.iterdir():
                if entry.suffix == ".lock":
                    if not entry.with_suffix("").exists():
                        self._remove_if_unlocked(entry, entry)
                    continue
                removed += self._remove_if_unlocked(entry, staging / f"{entry.name}.lock")
            _prune(staging)
        if removed:
            log.info("stale_staging_removed", count=removed)
        return removed

    @staticmethod
    def _remove_if_unlocked(entry: Path, lock_path: Path) -> int:
        """Deletes `entry` and its lock when no live builder holds the lock; returns 1 if so."""
        fd = fsio.try_lock(lock_path)
        if fd is None:
            return 0  # a live builder holds it
        try:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        return 1

    # ---- internals -----------------------------------------------------------------------

    def _read_active_unlocked(self, model: str) -> int:
        with contextlib.suppress(IntegrityError):
            return self.read_active(model)
        return 0

    @staticmethod
    def _write_active(paths: ModelPaths, version: int) -> None:
        fsio.write_atomic(paths.active, f"{version}\n".encode())

    def append_event(self, model: str, event: str, **fields: Any) -> None:
        """Appends to the model's event log; callers hold the model lock."""
        self._append_event(self.paths(model), event, **fields)

    @staticmethod
    def _append_event(paths: ModelPaths, event: str, **fields: Any) -> None:
        record = {"time": time.time(), "event": event, **fields}
        fsio.append_line(paths.events, (json.dumps(record, sort_keys=True) + "\n").encode())


def _prune(staging: Path) -> None:
    """Removes a model's empty `.staging` folder and the model folder when that is all it
    holds (a first Train that failed). A model with versions keeps its `.staging`, so a
    Train never needs to create anything in the model folder itself. rmdir refuses a
    folder that is not empty, and a builder that loses a fresh `.staging` to this makes it
    again (begin_staging)."""
    try:
        if os.listdir(staging.parent) != [STAGING]:
            return
        staging.rmdir()
        staging.parent.rmdir()
    except OSError:
        return
