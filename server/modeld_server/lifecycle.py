"""Which version of a model is live, and the metadata around that: activation (for Rollback
and Promote alike), policies and aliases. ModelService owns one Lifecycle and calls it; this
module does not know the service."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from modeld_server.errors import FailedPrecondition, InvalidArgument, NotFound, quoted
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.meta import ALIASES, POLICY, ModelMeta, check_alias
from modeld_server.registry.store import RegistryStore
from modeld_server.serving.manager import ServingManager
from modeld_server.training.gate import Policy
from modeld_server.types import RollbackResult

log = structlog.get_logger(__name__)


class Lifecycle:
    """Activation, Promote, policies and aliases of the models in one registry."""

    def __init__(self, store: RegistryStore, index: RegistryIndex, serving: ServingManager,
                 meta: ModelMeta, known: Callable[[str], str],
                 policy_set: Callable[[str, Policy], None] = lambda model, policy: None) -> None:
        """Args:
            known: checks a model name and that the model exists (NotFound); returns it.
            policy_set: told of each policy this daemon writes (drift monitoring's rate).
        """
        self._policy_set = policy_set
        self._store = store
        self._index = index
        self._serving = serving
        self._meta = meta
        self._known = known

    def activate(self, model: str, version: int, *, event: str, reason: str,
                 expected_active: int) -> RollbackResult:
        """Makes `version` the active one and returns once this daemon serves it.

        The one activation path (Rollback and Promote): load first, so the swap after the
        pointer moves is instant and a version that cannot load is refused without touching
        the registry; then move the pointer (logging `event` in events.jsonl), swap, refresh
        the index, and log `event`.

        Raises:
            FailedPrecondition: the version cannot be loaded, or the active version is no
                longer `expected_active`.
        """
        self._serving.preload(model, version)
        previous = self._store.set_active(model, version, event=event, reason=reason,
                                          expected_active=expected_active)
        self._serving.activate(model, version)
        self._index.refresh([model])
        log.info(event, model=model, version=version, previous=previous, reason=reason)
        return RollbackResult(model, previous, version)

    def promote(self, model: str, version: int, reason: str,
                expected_active: int = 0) -> RollbackResult:
        """Activates `version` whatever the gate said; audited with the reason."""
        self._known(model)
        if version <= 0:
            raise InvalidArgument(f"version must be > 0, got {version}")
        if not reason.strip():
            raise InvalidArgument("reason is required: a promotion overrides the quality gate")
        current = self._store.read_active(model)
        if version == current:
            raise FailedPrecondition(f"version {version} of model {model!r} is already active")
        self._store.read_manifest(model, version)
        return self.activate(model, version, event="promoted", reason=reason,
                             expected_active=expected_active or current)

    def get_policy(self, model: str, must_exist: bool = True) -> Policy:
        validate_model_name(model)
        if must_exist:
            self._known(model)
        return Policy.from_json(self._meta.read(model, POLICY))

    def set_policy(self, model: str, policy: Policy) -> Policy:
        validate_model_name(model)
        policy = policy.validated()
        self._meta.write(model, POLICY, policy.to_json(), "policy_set", policy=policy.to_json())
        self._policy_set(model, policy)
        return policy

    def set_alias(self, model: str, alias: str, version: int, expected: int | None) -> int:
        self._known(model)
        if version <= 0:
            raise InvalidArgument(f"version must be > 0, got {version}")
        self._meta.set_alias(model, alias, version, expected)
        return version

    def delete_alias(self, model: str, alias: str, expected: int | None) -> int:
        self._known(model)
        return self._meta.delete_alias(model, alias, expected)

    def resolve_alias(self, model: str, alias: str) -> int:
        check_alias(alias)
        version = self._meta.aliases(validate_model_name(model)).get(alias)
        if version is None:
            raise NotFound(f"alias {quoted(alias)} of model {model!r} not found")
        return version

    def aliases(self, model: str) -> dict[str, int]:
        if (self._store.paths(model).root / ALIASES).exists():
            return self._meta.aliases(model)
        return {}
