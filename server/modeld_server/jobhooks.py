"""What the job runner asks of the rest of the daemon: a job's gate context before it
trains, and serving plus retention once its version is published."""

from __future__ import annotations

from typing import Any

from modeld_server.errors import ModeldError
from modeld_server.lifecycle import Lifecycle
from modeld_server.registry import retention
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.meta import ModelMeta
from modeld_server.registry.store import RegistryStore
from modeld_server.serving.manager import ServingManager
from modeld_server.training.cluster import DaskCluster
from modeld_server.types import TrainSpec


class JobHooks:
    """JobManager's context_for and on_published."""

    def __init__(self, store: RegistryStore, index: RegistryIndex, serving: ServingManager,
                 meta: ModelMeta, lifecycle: Lifecycle, dask: DaskCluster,
                 keep_versions: int) -> None:
        self._store = store
        self._index = index
        self._serving = serving
        self._meta = meta
        self._lifecycle = lifecycle
        self._dask = dask
        self._keep_versions = keep_versions

    def context(self, spec: TrainSpec) -> dict[str, Any]:
        """What a training job needs: for its gate the policy and the champion (if any),
        and for engine=dask the scheduler to connect to (which starts --dask-local's
        cluster on the first such job)."""
        context = self._gate_context(spec)
        if spec.engine == "dask":
            context["dask_scheduler"] = self._dask.address()
            context["dask_local"] = self._dask.local
        return context

    def _gate_context(self, spec: TrainSpec) -> dict[str, Any]:
        policy = self._lifecycle.get_policy(spec.model, must_exist=False)
        if policy.disabled:
            return {}
        context: dict[str, Any] = {"policy": policy.to_json()}
        try:
            active = self._store.read_active(spec.model)
        except ModeldError:
            active = 0
        if active:
            context["champion"] = {"registry": str(self._store.root), "model": spec.model,
                                   "version": active}
        return context

    def published(self, model: str, version: int) -> None:
        """Serves the new version (if active) and applies retention."""
        self._serving.poll_once([model])
        if self._keep_versions:
            deleted = retention.enforce(self._store, model, self._keep_versions,
                                        self._serving.loaded_versions(model),
                                        set(self._meta.aliases(model).values()))
            if deleted:
                self._index.refresh([model])
