"""Where things live in the registry. Path math and name validation only, no I/O.

    <root>/<model>/versions/<n>/manifest.json   one immutable version and its artifacts
    <root>/<model>/ACTIVE                        the active version number, one line
    <root>/<model>/events.jsonl                  append-only history of the model
    <root>/<model>/.lock                         OS file lock serialising writers
    <root>/<model>/.staging/<token>/             versions being built (never read)
    <root>/<model>/.staging/<token>.lock         held by the builder while it lives
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modeld_server.errors import InvalidArgument

MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""A model name: 1-64 characters, letters, digits, '.', '_' and '-', not starting with '.'."""

_MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN)
_VERSION_DIR_RE = re.compile(r"[1-9][0-9]*")

MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
EVENTS = "events.jsonl"
LOCK = ".lock"
STAGING = ".staging"
VERSIONS = "versions"


def validate_model_name(name: str, field: str = "model") -> str:
    """Checks a model name against MODEL_NAME_PATTERN, so no name can leave the registry.

    Args:
        name: the name as the caller sent it.
        field: the request field it came from, for the error message.

    Returns:
        The name, unchanged.

    Raises:
        InvalidArgument: naming the field and the value.
    """
    if not name:
        raise InvalidArgument(f"{field} is required")
    if not is_model_name(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise InvalidArgument(
            f"{field} {shown!r} is not a valid model name: use 1-64 characters from "
            "[A-Za-z0-9._-], starting with a letter or digit"
        )
    return name


def is_model_name(name: str) -> bool:
    """Whether `name` matches MODEL_NAME_PATTERN (the test validate_model_name makes)."""
    return _MODEL_NAME_RE.fullmatch(name) is not None


def parse_version_dir(name: str) -> int | None:
    """Returns the version number a versions/ entry stands for, or None for anything else."""
    # Not str.isdigit: it accepts non-ASCII digits (U+00B2 makes int() fail, U+0661 is 1).
    if not _VERSION_DIR_RE.fullmatch(name):
        return None
    return int(name)


@dataclass(frozen=True)
class ModelPaths:
    """The paths of one model in a registry."""

    root: Path

    @property
    def versions(self) -> Path:
        return self.root / VERSIONS

    @property
    def active(self) -> Path:
        return self.root / ACTIVE

    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def staging(self) -> Path:
        return self.root / STAGING

    def version(self, number: int) -> Path:
        return self.versions / str(number)

    def manifest(self, number: int) -> Path:
        return self.version(number) / MANIFEST


def model_paths(registry_root: Path, model: str) -> ModelPaths:
    """The paths of `model`, which must already be validated."""
    return ModelPaths(registry_root / model)
