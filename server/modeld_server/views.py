"""What the service answers the edge with: ready-made views that the rpc layer only converts.

Each holds everything one reply message needs, so a servicer method is one conversion of
the request, one call into the service and one conversion of the answer (rpc/convert.py),
and a test can hand the servicer these values from a fake service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeld_server.freshness import StatusWarning
from modeld_server.monitoring.report import DriftReport
from modeld_server.registry.manifest import Manifest, VersionSummary
from modeld_server.serving.manager import ModelView
from modeld_server.training.scheduler import ScheduleSpec, ScheduleState


@dataclass(frozen=True, kw_only=True)
class ModelStatus:
    """One model as GetStatus and Reload report it."""

    view: ModelView
    """How the model stands in this daemon's memory."""
    summary: VersionSummary | None
    """The active version's summary, when the index has it."""
    versions: Sequence[int]
    """Published versions, ascending."""
    aliases: Mapping[str, int]
    schedule: tuple[ScheduleSpec, ScheduleState] | None
    warnings: Sequence[StatusWarning]
    drift: str
    """The serving version's drift status ("" when none is loaded)."""


@dataclass(frozen=True, kw_only=True)
class RepositoryModel:
    """One model as V2's repository index lists it: every version and its role here."""

    view: ModelView
    versions: Sequence[int]
    """Published versions, ascending."""
    summaries: Mapping[int, VersionSummary]
    answering: frozenset[int]
    """Versions loaded here, that answer without a load first."""
    aliases: Mapping[str, int]


@dataclass(frozen=True)
class VersionDetail:
    """GetVersion's answer: the whole manifest, the active version and the model's aliases."""

    manifest: Manifest
    active: int
    aliases: Mapping[str, int]


@dataclass(frozen=True)
class AliasView:
    """An alias as SetAlias set it, or as DeleteAlias left it (version 0)."""

    model: str
    alias: str
    version: int


@dataclass(frozen=True)
class DriftView:
    """GetDrift's answer: the report and the sampling rate in force for the model."""

    report: DriftReport
    sample_rate: float


@dataclass(frozen=True)
class DenseRows:
    """Predict's numeric rows: `values` row-major, len(columns) per row."""

    columns: Sequence[str]
    values: Sequence[float] | np.ndarray

    def __len__(self) -> int:
        return len(self.values) // max(1, len(self.columns))


@dataclass(frozen=True)
class RecordRows:
    """Predict's rows as records keyed by column name (mixed types allowed)."""

    records: Sequence[Mapping[str, Any]]

    def __len__(self) -> int:
        return len(self.records)


Rows = DenseRows | RecordRows
"""The two row forms Predict takes."""
