"""manifest.json typed: the registry's durable contract, read the same way everywhere.

A manifest is written once, when its version is published, and read for as long as the
registry lives, by daemons older and newer than the one that wrote it. So reading is
tolerant both ways: a key this daemon does not know (a newer writer's) is kept in `raw`
and written back unchanged, and a key an older writer did not write takes its default.
Only a `manifest_schema` newer than MANIFEST_SCHEMA is refused, because it announces a
change in meaning that tolerance cannot bridge. A key of the wrong JSON type is an
IntegrityError naming the file, the key and both types.

tests/fixtures/manifests/ keeps a manifest of every shape ever written; a test loads each,
so a change here that would orphan an old registry fails the suite.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modeld_server.errors import FailedPrecondition, IntegrityError

MANIFEST_SCHEMA = 1
"""The manifest schema this daemon writes and the newest it reads. Bump it only for a
change old readers would misread (a key whose meaning changes), never for a new key."""

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean", type(None): "null"}


@dataclass(frozen=True, kw_only=True)
class VersionSummary:
    """The part of a manifest the index keeps in memory: what ListVersions and GetStatus show.

    The rest (sample row, per-file hashes, validation report) stays on disk.
    """

    version: int
    algorithm: str = ""
    task: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""
    job_id: str = ""
    dataset: Mapping[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()
    confusion_matrix: Mapping[str, Any] | None = None
    timings: Mapping[str, Any] = field(default_factory=dict)
    state: str = "available"
    """available or rejected (by the quality gate); whether it is active is not stored here."""
    gate: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "manifest") -> VersionSummary:
        """Reads the summary's keys from a manifest (or a summary) parsed from JSON.

        Raises:
            IntegrityError: a known key holds the wrong JSON type.
        """
        return cls(**_known_fields(cls, data, source))

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON types (arrays for the tuples)."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @property
    def rejected(self) -> bool:
        return self.state == "rejected"


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """One version's manifest.json."""

    manifest_schema: int = MANIFEST_SCHEMA
    model: str = ""
    version: int
    algorithm: str = ""
    task: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    cv_folds: int | None = None
    seed: int | None = None
    """None in a manifest that does not record it."""
    format: str = ""
    """How the artifacts were saved (see artifacts.save)."""
    dataset: Mapping[str, Any] = field(default_factory=dict)
    validation: Mapping[str, Any] | None = None
    schema: Mapping[str, Any] | None = None
    """The FeatureSchema as JSON."""
    features: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()
    sample_row: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    confusion_matrix: Mapping[str, Any] | None = None
    gate: Mapping[str, Any] | None = None
    state: str = "available"
    calibration: Mapping[str, Any] | None = None
    anomaly: Mapping[str, Any] | None = None
    timings: Mapping[str, Any] = field(default_factory=dict)
    libraries: Mapping[str, Any] = field(default_factory=dict)
    job_id: str = ""
    request_id: str = ""
    created_at: str = ""
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    """file name -> {"size": bytes, "sha256": hex digest}."""
    oof: Mapping[str, Any] | None = None
    """{"file": "oof.npz", "key": the folds its out-of-fold predictions came from} (see
    training/oof.py); None in a version trained before they were stored."""
    profile: Mapping[str, Any] | None = None
    """The training data's reference profile for drift monitoring (monitoring/profile.py);
    None in a version trained before profiles were kept."""
    feature_importance: Mapping[str, Any] | None = None
    """Feature importance: the estimator's own and permutation (training/importance.py)."""
    resources: Mapping[str, Any] | None = None
    """What the job used: its process tree's peak memory."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The JSON object as read, unknown keys included (GetVersion shows it whole)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "manifest") -> Manifest:
        """Reads a manifest parsed from JSON.

        Args:
            source: names the manifest in error messages (its path).

        Raises:
            FailedPrecondition: its manifest_schema is newer than MANIFEST_SCHEMA.
            IntegrityError: a known key holds the wrong JSON type.
        """
        known = _known_fields(cls, data, source)
        schema = known.get("manifest_schema", MANIFEST_SCHEMA)
        if schema > MANIFEST_SCHEMA:
            raise FailedPrecondition(
                f"{source}: manifest schema {schema} is newer than this daemon reads "
                f"({MANIFEST_SCHEMA}): upgrade modeld")
        return cls(**known, raw=dict(data))

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON: the keys it was read with (unknown ones included) plus any
        known field that differs from its default, so from_json then to_json gives back the
        same object, key for key."""
        out = dict(self.raw)
        for f in dataclasses.fields(self):
            if f.name == "raw":
                continue
            value = getattr(self, f.name)
            if f.name in self.raw or value != _default(f):
                out[f.name] = _to_json(value)
        return out

    @property
    def summary(self) -> VersionSummary:
        """What the index keeps of it."""
        return VersionSummary(**{f.name: getattr(self, f.name)
                                 for f in dataclasses.fields(VersionSummary)})

    @property
    def rejected(self) -> bool:
        return self.state == "rejected"


def _known_fields(cls: type, data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The keys of `data` that name fields of `cls`, type-checked, arrays made tuples."""
    hints = _hints(cls)
    out: dict[str, Any] = {}
    for name, hint in hints.items():
        if name == "raw" or name not in data:
            continue
        value = data[name]
        allowed = _json_types(hint)
        # bool is an int to isinstance; JSON true is not a version number.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            wanted = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in allowed))
            found = _JSON_NAMES.get(type(value), type(value).__name__)
            raise IntegrityError(f"{source}: key {name!r} is {found}, expected {wanted}")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _json_types(hint: Any) -> tuple[type, ...]:
    """The JSON (Python) types a field's annotation admits."""
    if isinstance(hint, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _json_types(arg))
    if hint is type(None):
        return (type(None),)
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return (list,)
    if origin is Mapping:
        return (dict,)
    return (origin,)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _to_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
