"""What a training worker tells the job runner over its pipe.

Any number of Progress messages, then one outcome: a Result or a Failure (or nothing, when
the worker dies). They are frozen dataclasses rather than tuples so both ends are checked
by mypy and a field cannot be read from the wrong position; they pickle by reference to
this module, which the worker and the daemon both import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """A phase started or a fold ended."""

    phase: str
    progress: float
    """0..1."""
    message: str
    metrics: dict[str, Any]
    """The metrics so far (per-fold partial means), as JSON."""


@dataclass(frozen=True)
class Result:
    """The training succeeded: its artifacts are in the staging folder."""

    fields: dict[str, Any]
    """The manifest fields the training produced (see worker.train)."""


@dataclass(frozen=True)
class Failure:
    """The training failed, for a reason a domain error names."""

    kind: str
    """The errors.py class name (FailedPrecondition, ResourceExhausted...), or Internal."""
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


Outcome = Result | Failure
