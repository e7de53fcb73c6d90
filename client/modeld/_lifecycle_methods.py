"""The lifecycle RPCs as Client methods (mixed into Client): Promote, promotion policies,
aliases, schedules. Their records (Policy, Alias, Schedule) are in lifecycle.py.

Only the reads (GetPolicy, GetSchedule) retry. The writes are not retried:
Promote and the alias calls carry their own guards (expected versions) for a
caller who wants a repeat to be safe.
"""

from __future__ import annotations

from modeld._transport import Transport
from modeld.lifecycle import Alias, Policy, Schedule
from modeld.types import RollbackResult
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["LifecycleMethods"]


class LifecycleMethods:
    """Mixed into Client; uses its Transport."""

    _t: Transport

    def promote(self, model: str, version: int, *, reason: str,
                expected_active_version: int = 0,
                timeout: float | None = None) -> RollbackResult:
        """Activates a version regardless of the quality gate (a rejected one too).

        Args:
            model: The model's name.
            version: The version to activate.
            reason: Why, for the event log (required by the daemon).
            expected_active_version: If not 0, only while this version is active.
            timeout: This call's deadline in seconds.

        Returns:
            The previous and the new active version.
        """
        request = pb.PromoteRequest(model=model, version=version, reason=reason,
                                    expected_active_version=expected_active_version)
        return RollbackResult.from_pb(self._t.unary("Promote", request, timeout, retry=False))

    def get_policy(self, model: str, *, timeout: float | None = None) -> Policy:
        """Reads a model's promotion policy (the defaults when none was set).

        Args:
            model: The model's name.
            timeout: This call's deadline in seconds.

        Returns:
            The policy.
        """
        request = pb.GetPolicyRequest(model=model)
        return Policy.from_pb(self._t.unary("GetPolicy", request, timeout, retry=True))

    def set_policy(self, policy: Policy, *, timeout: float | None = None) -> Policy:
        """Replaces a model's promotion policy (the model need not exist yet).

        Args:
            policy: The new policy; its ``model`` names the model.
            timeout: This call's deadline in seconds.

        Returns:
            The policy as the daemon stored it.
        """
        request = pb.SetPolicyRequest(policy=policy.to_pb())
        return Policy.from_pb(self._t.unary("SetPolicy", request, timeout, retry=False))

    def set_alias(self, model: str, alias: str, version: int, *,
                  expected_version: int | None = None,
                  timeout: float | None = None) -> Alias:
        """Points an alias at a version.

        Args:
            model: The model's name.
            alias: The alias, [a-z][a-z0-9_-]*.
            version: The version it should point at.
            expected_version: If set, only when the alias points at this version now
                (0: only when it does not exist yet).
            timeout: This call's deadline in seconds.

        Returns:
            The alias after the change.
        """
        request = pb.SetAliasRequest(model=model, alias=alias, version=version)
        if expected_version is not None:
            request.expected_version = expected_version
        return Alias.from_pb(self._t.unary("SetAlias", request, timeout, retry=False))

    def delete_alias(self, model: str, alias: str, *, expected_version: int | None = None,
                     timeout: float | None = None) -> Alias:
        """Removes an alias.

        Args:
            model: The model's name.
            alias: The alias.
            expected_version: If set, only when the alias points at this version now.
            timeout: This call's deadline in seconds.

        Returns:
            The removed alias (version 0).
        """
        request = pb.DeleteAliasRequest(model=model, alias=alias)
        if expected_version is not None:
            request.expected_version = expected_version
        return Alias.from_pb(self._t.unary("DeleteAlias", request, timeout, retry=False))

    def set_schedule(self, schedule: Schedule, *, timeout: float | None = None) -> Schedule:
        """Sets a model's retraining schedule (cron, interval and/or data trigger).

        Args:
            schedule: The schedule; its ``train`` spec is what each run submits.
            timeout: This call's deadline in seconds.

        Returns:
            The schedule with its next run.
        """
        request = pb.SetScheduleRequest(schedule=schedule.to_pb())
        return Schedule.from_pb(self._t.unary("SetSchedule", request, timeout, retry=False))

    def get_drift(self, model: str, *, timeout: float | None = None) -> pb.DriftReport:
        """The drift of the traffic this daemon (one replica) served to the model's
        serving version, per feature and for the prediction.

        Args:
            model: The model's name.
            timeout: This call's deadline in seconds.

        Returns:
            The DriftReport message (status, window, per-feature metric/value/thresholds).
        """
        request = pb.GetDriftRequest(model=model)
        report: pb.DriftReport = self._t.unary("GetDrift", request, timeout, retry=True)
        return report

    def get_schedule(self, model: str, *, timeout: float | None = None) -> Schedule:
        """Reads a model's schedule (NotFound when it has none).

        Args:
            model: The model's name.
            timeout: This call's deadline in seconds.

        Returns:
            The schedule with its next run and last outcome.
        """
        request = pb.GetScheduleRequest(model=model)
        return Schedule.from_pb(self._t.unary("GetSchedule", request, timeout, retry=True))

    def delete_schedule(self, model: str, *, timeout: float | None = None) -> Schedule:
        """Removes a model's schedule.

        Args:
            model: The model's name.
            timeout: This call's deadline in seconds.

        Returns:
            The schedule that was removed.
        """
        request = pb.DeleteScheduleRequest(model=model)
        return Schedule.from_pb(self._t.unary("DeleteSchedule", request, timeout, retry=False))
