"""V2's calls on top of ModelService: versions, aliases, Predict's own path, Reload, Rollback.

A V2 request becomes the rows Predict takes, never a second way of calling a model: one
[N, F] tensor becomes dense rows, one tensor per column becomes records (or, for an
all-numeric model, dense rows with the columns named). Errors are domain errors, so
each transport maps them as it maps Predict's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from modeld_server.errors import FailedPrecondition, InvalidArgument, Unavailable, quoted
from modeld_server.features import FeatureSchema
from modeld_server.oip.tensors import BYTES, Output, Tensor
from modeld_server.pages import version_state
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.manifest import VersionSummary
from modeld_server.service import BUILD_VERSION, ModelService
from modeld_server.serving.loaded import Prediction
from modeld_server.types import LoadState, Task

EXTENSIONS = ("model_repository", "binary_tensor_data")
OUTPUTS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: ("label", "probabilities"),
    Task.REGRESSION: ("value",),
    Task.ANOMALY_DETECTION: ("label", "anomaly_score"),
}
_VERSION = re.compile(r"[0-9]{1,18}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_REFUSED_LOAD = "models come from Train, so Triton's config and file: parameters do not apply"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]


@dataclass(frozen=True)
class InferAnswer:
    model: str
    version: int
    outputs: list[Output]


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str


class OpenInference:
    """V2 over one ModelService; `serving` follows the daemon's health status."""

    def __init__(self, service: ModelService) -> None:
        self._service = service
        self.serving = False

    # ---- health and metadata --------------------------------------------------------------

    def server_metadata(self) -> tuple[str, str, tuple[str, ...]]:
        return "modeld", BUILD_VERSION, EXTENSIONS

    def model_ready(self, name: str, version: str) -> bool:
        """True when that version is loaded here and answers without a load first.

        Raises:
            NotFound: unknown model, version or alias.
        """
        pinned = self.pick(name, version)
        view = self._service.views(name)[0]
        if pinned == 0:
            return view.state is LoadState.READY
        self._service.get_version(name, pinned)  # NOT_FOUND for a version that never was
        return pinned in self._service.answering(name)

    def model_metadata(self, name: str, version: str) -> ModelMetadata:
        """Inputs (one per feature column, in the model's order) and the task's outputs."""
        manifest = self._service.get_version(name, self.pick(name, version)).manifest
        schema = FeatureSchema.from_json(manifest.schema or {})
        inputs = [TensorMeta(c, "FP64", (-1, 1)) for c in schema.numeric]
        inputs += [TensorMeta(c, BYTES, (-1, 1)) for c in schema.categorical]
        width = len(manifest.classes)
        shapes = {"label": (BYTES, (-1,)), "probabilities": ("FP64", (-1, width)),
                  "value": ("FP64", (-1,)), "anomaly_score": ("FP64", (-1,))}
        outputs = [TensorMeta(o, *shapes[o]) for o in OUTPUTS[Task(manifest.task)]]
        versions = [str(v) for v in self._service.answering(name)]
        return ModelMetadata(name, versions, f"modeld_{manifest.algorithm}", inputs, outputs)

    # ---- inference --------------------------------------------------------------------------

    def pick(self, name: str, version: str) -> int:
        """The version `model_version` names: 0 (the active one) for "", a number, an alias."""
        validate_model_name(name)
        if not version:
            return 0
        if _VERSION.fullmatch(version):
            return int(version)
        if _ALIAS.fullmatch(version):
            return self._service.pick_version(name, 0, version)
        raise InvalidArgument(f"model_version {quoted(version)} is neither empty, a version "
                              "number nor an alias name")

    def infer(self, name: str, version: str, inputs: Sequence[Tensor], per_column: bool,
              wanted: Sequence[str]) -> InferAnswer:
        """Predictions for the rows in `inputs`, through Predict's path.

        Args:
            per_column: the request said content_type "pd"; a single input named after a
                column, or several inputs, are read per column too.
            wanted: output names; empty means all of the task's outputs.
        """
        pinned = self.pick(name, version)
        if not inputs:
            raise InvalidArgument("inputs is empty: send one [N, F] tensor or one tensor "
                                  "per column")
        schema = self._service.feature_schema(name, pinned)
        single = inputs[0]
        if per_column or len(inputs) > 1 or single.name in schema.columns:
            answered, prediction = self._by_column(name, pinned, schema, inputs)
        else:
            answered, prediction = self._dense(name, pinned, schema, single)
        return InferAnswer(name, answered, outputs(prediction, wanted))

    def _dense(self, name: str, pinned: int, schema: FeatureSchema,
               tensor: Tensor) -> tuple[int, Prediction]:
        where = f"input {quoted(tensor.name)}"
        if schema.categorical:
            raise InvalidArgument(
                f"{where} is not a column of model {name!r}, which has categorical columns "
                f"({', '.join(schema.categorical)}): send one tensor per column, named after "
                "it, with request parameter content_type \"pd\"")
        width = len(schema.numeric)
        if len(tensor.shape) != 2 or tensor.shape[1] != width:
            raise InvalidArgument(
                f"{where} has shape {list(tensor.shape)}, but model {name!r} has {width} "
                f"feature columns: send [N, {width}] in the order of ModelMetadata's inputs, "
                "or one tensor per column named after it")
        if tensor.datatype == BYTES:
            raise InvalidArgument(f"{where} is BYTES: an [N, F] tensor holds numbers (FP32 "
                                  "or FP64)")
        return self._service.predict_dense(name, pinned, schema.numeric, tensor.data)

    def _by_column(self, name: str, pinned: int, schema: FeatureSchema,
                   inputs: Sequence[Tensor]) -> tuple[int, Prediction]:
        rows, inputs = _check_columns(name, schema, inputs)
        names = [t.name for t in inputs]
        if not schema.categorical:
            matrix = np.empty((rows, len(inputs)), dtype=np.float64)
            for j, tensor in enumerate(inputs):
                matrix[:, j] = tensor.data
            return self._service.predict_dense(name, pinned, names, matrix.ravel())
        columns = [t.data.tolist() for t in inputs]
        records = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        return self._service.predict_records(name, pinned, records)

    # ---- the repository extension ---------------------------------------------------------

    def index(self, ready_only: bool) -> list[IndexEntry]:
        """Every model's versions, newest first, with their state here and their role."""
        out = []
        for model in self._service.repository():
            view = model.view
            aliases: dict[int, list[str]] = {}
            for alias, number in sorted(model.aliases.items()):
                aliases.setdefault(number, []).append(alias)
            for number in reversed(model.versions):
                state, reason = _index_state(view.state, view.error, view.active, number,
                                             model.answering, model.summaries.get(number))
                if aliases.get(number):
                    reason += f"; aliases: {', '.join(aliases[number])}"
                if state == "READY" or not ready_only:
                    out.append(IndexEntry(view.model, str(number), state, reason))
        return out

    def load(self, name: str, parameters: dict[str, Any]) -> None:
        """Re-reads the model from the registry (Reload); with parameter "version",
        activates that version first (Rollback). Returns once it answers.

        Raises:
            InvalidArgument: a parameter other than "version".
            FailedPrecondition: the version cannot be loaded, or there is none.
        """
        unknown = sorted(set(parameters) - {"version"})
        if unknown:
            raise InvalidArgument(f"parameter {quoted(unknown[0])} is not supported: only "
                                  f"\"version\" is ({_REFUSED_LOAD})")
        view = self._service.views(name)[0]
        if "version" in parameters:
            target = self.pick(name, str(parameters["version"]))
            if target and target != view.active:
                self._service.rollback(name, target, "RepositoryModelLoad")
        view = self._service.reload(name)[0].view
        if view.state is LoadState.READY:
            return
        if view.state is LoadState.NO_ACTIVE_VERSION:
            raise FailedPrecondition(f"model {name!r} has no active version: train one first")
        if view.state is LoadState.FAILED:
            raise FailedPrecondition(f"model {name!r} v{view.active} cannot be loaded: "
                                     f"{view.error}")
        raise Unavailable(f"model {name!r} v{view.active} is not loaded yet: "
                          f"{view.error or view.state.value}")

    def unload(self, name: str) -> NoReturn:
        self._service.views(name)  # NOT_FOUND for an unknown model
        raise FailedPrecondition(
            f"modeld always serves each model's active version, so {name!r} cannot be "
            "unloaded: activate another version (RepositoryModelLoad with parameter "
            "\"version\", or Rollback)")


def _index_state(load: LoadState, error: str, active: int, number: int,
                 answering: frozenset[int], summary: VersionSummary | None) -> tuple[str, str]:
    role = version_state(summary, active) if summary is not None else "inactive"
    if number in answering:
        return "READY", role
    if number == active:
        state = "LOADING" if load is LoadState.LOADING else "UNAVAILABLE"
        return state, f"active, {load.value}" + (f": {error}" if error else "")
    if role == "rejected":
        return "UNAVAILABLE", "rejected by the quality gate; ModelInfer may pin it"
    return "UNAVAILABLE", f"inactive, not loaded; ModelInfer with model_version \"{number}\" " \
                          "loads it"


def _check_columns(name: str, schema: FeatureSchema,
                   inputs: Sequence[Tensor]) -> tuple[int, list[Tensor]]:
    """Checks one tensor per column; returns the row count and the feature columns (a
    target column is ignored, as Predict ignores it in a record)."""
    known = set(schema.columns) | ({schema.target} if schema.target else set())
    numeric = set(schema.numeric)
    rows = inputs[0].shape[0]
    seen: set[str] = set()
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}] {quoted(tensor.name)}"
        if tensor.name not in known:
            raise InvalidArgument(f"{where} is not a column of model {name!r}; its columns: "
                                  f"{_some(list(schema.columns))}")
        if tensor.name in seen:
            raise InvalidArgument(f"{where} is sent twice")
        seen.add(tensor.name)
        if len(tensor.shape) == 2 and tensor.shape[1] != 1:
            raise InvalidArgument(f"{where} has shape {list(tensor.shape)}: a column is [N] "
                                  "or [N, 1]")
        if tensor.shape[0] != rows:
            raise InvalidArgument(f"{where} has {tensor.shape[0]} rows, but inputs[0] "
                                  f"{quoted(inputs[0].name)} has {rows}")
        if tensor.name in numeric and tensor.datatype == BYTES:
            raise InvalidArgument(f"{where} is BYTES, but the column is numeric: send FP32 "
                                  "or FP64 (NaN for a missing value)")
    missing = [c for c in schema.columns if c not in seen]
    if missing:
        raise InvalidArgument(f"inputs miss column(s) {_some(missing)} of model {name!r}")
    return rows, [t for t in inputs if t.name in schema.columns]


def _some(names: list[str], shown: int = 10) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return "[" + ", ".join(quoted(n) for n in names[:shown]) + more + "]"


def outputs(prediction: Prediction, wanted: Sequence[str]) -> list[Output]:
    """The prediction as V2 outputs, those named in `wanted` (all when empty), in order.

    Raises:
        InvalidArgument: an output the model's task does not have.
    """
    available = OUTPUTS[prediction.task]
    for name in wanted:
        if name not in available:
            raise InvalidArgument(f"output {quoted(name)} is not one of this "
                                  f"{prediction.task.value} model's: {', '.join(available)}")
    return [_output(prediction, name) for name in (wanted or available)]


def _output(p: Prediction, name: str) -> Output:
    builders: dict[str, Callable[[], Output]] = {
        "label": lambda: Output(name, BYTES, (len(p.labels),), np.array(p.labels, dtype=object)),
        "probabilities": lambda: _probabilities(p),
        "value": lambda: Output(name, "FP64", _flat_shape(p.values), _array(p.values)),
        "anomaly_score": lambda: Output(name, "FP64", _flat_shape(p.anomaly_scores),
                                        _array(p.anomaly_scores)),
    }
    return builders[name]()


def _probabilities(p: Prediction) -> Output:
    proba = _array(p.probabilities)
    return Output("probabilities", "FP64", (int(proba.shape[0]), int(proba.shape[1])), proba,
                  {"classes": json.dumps(p.classes or [])})


def _array(values: np.ndarray | None) -> np.ndarray:
    assert values is not None  # the task says which arrays are set
    return np.asarray(values, dtype=np.float64)


def _flat_shape(values: np.ndarray | None) -> tuple[int, ...]:
    return (len(_array(values)),)
