"""Client: one typed method per ModelManager RPC, a deadline on every call, errors mapped.

Reads (GetStatus, ListVersions, GetVersion, GetJob, ListJobs, GetPolicy,
GetSchedule) and Train retry on UNAVAILABLE under the call's deadline: reads
change nothing, and Train carries a request_id, so the daemon answers a repeat
with the job it already made. Every other call (Rollback, Promote, CancelJob,
Predict, Reload and the lifecycle writes) is tried once: Rollback and Promote
are made safe by ``expected_active_version`` instead, which the caller chooses.

The methods live in three groups: training jobs (``_training_methods.py``), the
lifecycle (``_lifecycle_methods.py``), and the registry and serving (here).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from modeld._channel import TLSConfig
from modeld._lifecycle_methods import LifecycleMethods
from modeld._predict import Predictions, Rows, encode_rows
from modeld._retry import RetryPolicy
from modeld._training_methods import TrainingMethods
from modeld._transport import Transport
from modeld.errors import NotFound
from modeld.status import ModelStatus, Status
from modeld.types import RollbackResult, Version, VersionState
from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_ADDRESS", "Client"]

DEFAULT_ADDRESS = "127.0.0.1:50051"


class Client(TrainingMethods, LifecycleMethods):
    """A connection to a modeld daemon. Thread-safe; use it as a context manager.

    Args:
        address: host:port of the daemon.
        token: Sent as ``authorization: Bearer <token>`` on every call.
        tls: A TLSConfig (CA and optional client pair), True for TLS with the
            system's roots, None for plaintext.
        timeout: The default deadline of each call in seconds, retries included;
            every method takes ``timeout=`` to override it.
        retry: The backoff of retried calls; None turns retries off.
        options: Extra gRPC channel options.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, token: str | None = None,
                 tls: TLSConfig | bool | None = None, timeout: float = 30.0, *,
                 retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 (frozen, shared safely)
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        self._t = Transport(address, token, tls, timeout, retry, options)

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._t.close()

    @property
    def stub(self) -> pb_grpc.ModelManagerStub:
        """The raw generated stub, for what the typed methods do not cover."""
        return self._t.stub

    # -- the registry ----------------------------------------------------------------------

    def status(self, model: str | None = None, *, timeout: float | None = None) -> Status:
        """Describes the daemon and each model (or one).

        Args:
            model: One model's name; None for all.
            timeout: This call's deadline in seconds.

        Returns:
            The daemon's status and each model's, sorted by name.
        """
        request = pb.GetStatusRequest(model=model or "")
        return Status.from_pb(self._t.unary("GetStatus", request, timeout, retry=True))

    def versions(self, model: str, *, state: VersionState | str | None = None,
                 page_size: int = 0, timeout: float | None = None) -> Iterator[Version]:
        """Iterates over a model's versions, newest first, fetching pages as it goes.

        Args:
            model: The model's name.
            state: Only active or inactive versions; None for all.
            page_size: Versions per page, 1..1000; 0 for the daemon's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            A lazy iterator (manifest is None in listings; use get_version).
        """
        name = f"VERSION_STATE_{VersionState(state or VersionState.UNSPECIFIED).value.upper()}"
        request = pb.ListVersionsRequest(model=model, page_size=page_size, state=name)
        for message in self._t.pages("ListVersions", request, "versions", timeout):
            yield Version.from_pb(message)

    def get_version(self, model: str, version: int = 0, *,
                    timeout: float | None = None) -> Version:
        """Reads one version with its full manifest.

        Args:
            model: The model's name.
            version: The version number; 0 for the active version.
            timeout: This call's deadline in seconds.

        Returns:
            The version, ``manifest`` included.
        """
        request = pb.GetVersionRequest(model=model, version=version)
        return Version.from_pb(self._t.unary("GetVersion", request, timeout, retry=True))

    def rollback(self, model: str, to_version: int = 0, *, reason: str = "",
                 expected_active_version: int = 0, dry_run: bool = False,
                 timeout: float | None = None) -> RollbackResult:
        """Makes an earlier version active; returns once this daemon serves it. Never retried.

        Args:
            model: The model's name.
            to_version: The version to activate; 0 for the one active before the current.
            reason: Why, for the daemon's event log.
            expected_active_version: If not 0, roll back only while this version is
                active (FailedPrecondition otherwise): makes a repeated call safe.
            dry_run: Check only, and answer what the rollback would do; nothing changes.
            timeout: This call's deadline in seconds.

        Returns:
            The previous and the new active version (with dry_run: the active one and
            the one that would become active).
        """
        request = pb.RollbackRequest(model=model, to_version=to_version, reason=reason,
                                     expected_active_version=expected_active_version,
                                     dry_run=dry_run)
        return RollbackResult.from_pb(self._t.unary("Rollback", request, timeout, retry=False))

    def reload(self, model: str | None = None, *,
               timeout: float | None = None) -> list[ModelStatus]:
        """Re-scans the registry on disk; returns when the daemon serves what the disk says.

        Args:
            model: One model's name; None for all.
            timeout: This call's deadline in seconds.

        Returns:
            Each re-scanned model's status after the reload.
        """
        response = self._t.unary("Reload", pb.ReloadRequest(model=model or ""), timeout,
                               retry=False)
        return [ModelStatus.from_pb(m) for m in response.models]

    # -- serving ---------------------------------------------------------------------------

    def predict(self, model: str, rows: Rows, *, version: int = 0, alias: str = "",
                explain: bool = False, ignore_extra_columns: bool = False,
                timeout: float | None = None) -> Predictions:
        """Runs a model on rows with the user's column names.

        Args:
            model: The model's name.
            rows: A sequence of {column: value} dicts, or a pandas DataFrame.
            version: A pinned version; 0 for the active version (or ``alias``).
            alias: An alias naming the version (e.g. "challenger"); ignored if version is set.
            explain: Also return each row's feature contributions (``explanations``);
                xgboost, logistic_regression and ridge only (else FailedPrecondition).
            ignore_extra_columns: Skip columns that are not features of the model (an id, a
                timestamp) instead of failing with InvalidArgument.
            timeout: This call's deadline in seconds.

        Returns:
            One prediction per row, in the order of ``rows``.
        """
        request = pb.PredictRequest(model=model, version=version, alias=alias, explain=explain,
                                    ignore_extra_columns=ignore_extra_columns)
        encoded = encode_rows(rows)
        if isinstance(encoded, pb.DenseRows):
            request.dense.CopyFrom(encoded)
        else:
            request.records.CopyFrom(encoded)
        return Predictions.from_pb(self._t.unary("Predict", request, timeout, retry=False))

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """Asks the standard grpc.health.v1 service.

        Args:
            service: A service name; "" for the daemon as a whole.
            timeout: This call's deadline in seconds.

        Returns:
            The serving status name: "SERVING", "NOT_SERVING", or "SERVICE_UNKNOWN" for a
            service the daemon does not know.
        """
        # Imported here: `import modeld` loads grpcio and protobuf only.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._t.channel)
        try:
            reply = self._t.call(stub.Check, health_pb2.HealthCheckRequest(service=service),
                                 timeout, retry=True)
        except NotFound:
            # The health protocol answers NOT_FOUND (without details) for an unknown service.
            return "SERVICE_UNKNOWN"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def connect(self, timeout: float | None = None) -> None:
        """Connects now rather than at the first call.

        Args:
            timeout: Seconds to wait for the connection; the client's default if None.

        Raises:
            ConnectionFailed: The daemon could not be reached in time.
        """
        self._t.connect(timeout)



