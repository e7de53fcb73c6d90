"""Predict's path, for modeld.v1's Predict and V2's inference alike: checks the rows,
gets the version from serving (loading a pinned one), predicts, offers the active
version's rows to drift monitoring and counts them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modeld_server.errors import InvalidArgument, ResourceExhausted
from modeld_server.lifecycle import Lifecycle
from modeld_server.monitoring.monitor import DriftMonitor
from modeld_server.registry.layout import validate_model_name
from modeld_server.serving.loaded import LoadedModel, Prediction
from modeld_server.serving.manager import ServingManager
from modeld_server.telemetry import PREDICT_ROWS
from modeld_server.views import DenseRows, Rows


class Predictor:
    """Predicts rows with a model's active, pinned or aliased version."""

    def __init__(self, *, serving: ServingManager, lifecycle: Lifecycle,
                 monitor: DriftMonitor, max_rows: int) -> None:
        self._serving = serving
        self._lifecycle = lifecycle
        self._monitor = monitor
        self._max_rows = max_rows
        """max_predict_rows"""

    def predict(self, model: str, version: int, alias: str, rows: Rows, *,
                ignore_extra_columns: bool = False, explain: bool = False
                ) -> tuple[int, Prediction]:
        """Predicts `rows` with the version asked for (pinned, by alias, or 0: the active
        one); returns the version that answered and its prediction."""
        pinned = self.pick_version(model, version, alias)
        if isinstance(rows, DenseRows):
            return self.predict_dense(model, pinned, rows.columns, rows.values,
                                      ignore_extra_columns, explain=explain)
        return self.predict_records(model, pinned, rows.records, ignore_extra_columns,
                                    explain=explain)

    def pick_version(self, model: str, version: int, alias: str) -> int:
        """The version a Predict addresses: pinned, by alias, or 0 for the active one."""
        return version if version or not alias else self._lifecycle.resolve_alias(model, alias)

    def predict_records(self, model: str, version: int, rows: Sequence[Mapping[str, Any]],
                        ignore_extra_columns: bool = False, *, explain: bool = False
                        ) -> tuple[int, Prediction]:
        loaded = self._serving.get(self._checked(model, version, len(rows)), version)
        return self._answer(model, version, loaded,
                            loaded.schema.matrix_from_records(rows, ignore_extra_columns),
                            explain)

    def predict_dense(self, model: str, version: int, columns: Sequence[str],
                      values: Sequence[float] | np.ndarray,
                      ignore_extra_columns: bool = False, *, explain: bool = False
                      ) -> tuple[int, Prediction]:
        rows = len(values) // max(1, len(columns))
        loaded = self._serving.get(self._checked(model, version, rows), version)
        return self._answer(model, version, loaded,
                            loaded.schema.matrix_from_dense(columns, values,
                                                            ignore_extra_columns),
                            explain)

    def _answer(self, model: str, version: int, loaded: LoadedModel, matrix: np.ndarray,
                explain: bool) -> tuple[int, Prediction]:
        """Predicts `matrix`, offers the active version's rows to drift monitoring (a pinned
        version's traffic is not what the profile compares), and counts the rows."""
        result = _predicted(loaded, matrix, explain)
        if not version:
            self._monitor.offer(model, loaded, matrix, _outputs(result))
        PREDICT_ROWS.labels(model).inc(len(matrix))
        return loaded.version, result

    def _checked(self, model: str, version: int, rows: int) -> str:
        validate_model_name(model)
        if version < 0:
            raise InvalidArgument(f"version must be >= 0, got {version}")
        if rows == 0:
            raise InvalidArgument("rows is empty: send at least one row")
        if rows > self._max_rows:
            raise ResourceExhausted(f"{rows} rows exceed max_predict_rows="
                                    f"{self._max_rows}")
        return model


def _predicted(loaded: LoadedModel, matrix: Any, explain: bool) -> Prediction:
    """The prediction, with each row's explanation when asked for."""
    result = loaded.predict(matrix)
    if not explain:
        return result
    return dataclasses.replace(result, explanations=loaded.explain(matrix))


def _outputs(result: Prediction) -> np.ndarray | None:
    """The numbers drift monitoring keeps of an answer (see monitoring/profile.py)."""
    if result.probabilities is not None:
        return result.probabilities
    return result.values if result.values is not None else result.anomaly_scores
