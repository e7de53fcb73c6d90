"""The model lifecycle around training: the quality gate's inputs, Promote, policies,
aliases and retention. Part of the service facade (ModelService inherits it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from modeld_server.errors import (
    FailedPrecondition,
    InvalidArgument,
    ModeldError,
    NotFound,
    quoted,
)
from modeld_server.registry import retention
from modeld_server.registry.layout import validate_model_name
from modeld_server.registry.meta import ALIASES, POLICY, check_alias
from modeld_server.training.gate import Policy
from modeld_server.types import TrainSpec

if TYPE_CHECKING:
    from modeld_server.service import ModelService, RollbackResult

log = structlog.get_logger(__name__)


class LifecycleMixin:
    """Promote, policies, aliases, retention; mixed into ModelService."""

    def job_context(self: ModelService, spec: TrainSpec) -> dict[str, Any]:
        """What a training job needs for its gate: the policy and the champion (if any)."""
        policy = self.get_policy(spec.model, must_exist=False)
        if policy.disabled:
            return {}
        context: dict[str, Any] = {"policy": policy.to_json()}
        try:
            active = self.store.read_active(spec.model)
        except ModeldError:
            active = 0
        if active:
            context["champion"] = {"registry": str(self.store.root), "model": spec.model,
                                   "version": active}
        return context

    def after_publish(self: ModelService, model: str, version: int) -> None:
        """Serves the new version (if active) and applies retention."""
        self.server.poll_once([model])
        if self.settings.keep_versions:
            deleted = retention.enforce(self.store, model, self.settings.keep_versions,
                                        self.server.loaded_versions(model),
                                        set(self.meta.aliases(model).values()))
            if deleted:
                self.index.refresh([model])

    def promote(self: ModelService, model: str, version: int, reason: str,
                expected_active: int = 0) -> RollbackResult:
        """Activates `version` whatever the gate said; audited with the reason."""
        from modeld_server.service import RollbackResult

        self._known(model)
        if version <= 0:
            raise InvalidArgument(f"version must be > 0, got {version}")
        if not reason.strip():
            raise InvalidArgument("reason is required: a promotion overrides the quality gate")
        current = self.store.read_active(model)
        if version == current:
            raise FailedPrecondition(f"version {version} of model {model!r} is already active")
        self.store.read_manifest(model, version)
        self.server.preload(model, version)
        previous = self.store.set_active(model, version, event="promoted", reason=reason,
                                         expected_active=expected_active or current)
        self.server.activate(model, version)
        self.index.refresh([model])
        log.info("promoted", model=model, version=version, previous=previous, reason=reason)
        return RollbackResult(model, previous, version)

    def get_policy(self: ModelService, model: str, must_exist: bool = True) -> Policy:
        validate_model_name(model)
        if must_exist:
            self._known(model)
        return Policy.from_json(self.meta.read(model, POLICY))

    def set_policy(self: ModelService, model: str, policy: Policy) -> Policy:
        validate_model_name(model)
        policy = policy.validated()
        self.meta.write(model, POLICY, policy.to_json(), "policy_set", policy=policy.to_json())
        self.monitor.set_rate(model, policy.monitor_sample)
        return policy

    def set_alias(self: ModelService, model: str, alias: str, version: int,
                  expected: int | None) -> int:
        self._known(model)
        if version <= 0:
            raise InvalidArgument(f"version must be > 0, got {version}")
        self.meta.set_alias(model, alias, version, expected)
        return version

    def delete_alias(self: ModelService, model: str, alias: str, expected: int | None) -> int:
        self._known(model)
        return self.meta.delete_alias(model, alias, expected)

    def resolve_alias(self: ModelService, model: str, alias: str) -> int:
        check_alias(alias)
        version = self.meta.aliases(validate_model_name(model)).get(alias)
        if version is None:
            raise NotFound(f"alias {quoted(alias)} of model {model!r} not found")
        return version

    def aliases(self: ModelService, model: str) -> dict[str, int]:
        return self.meta.aliases(model) if (self.store.paths(model).root / ALIASES).exists() else {}
