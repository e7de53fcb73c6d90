"""The plumbing under Client: channel, stub, credentials, deadlines, retries, error mapping."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import grpc

from modeld._channel import TLSConfig, is_connected, make_channel
from modeld._retry import RetryPolicy, call_with_retry
from modeld.errors import ConnectionFailed, ModeldError, from_rpc_error
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

__all__ = ["Transport"]

_CONNECTION_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class Transport:
    """Makes calls: a deadline on each, the token on each, retries where asked, errors mapped.

    Args:
        address: host:port of the daemon.
        token: Sent as ``authorization: Bearer <token>``; None sends nothing.
        tls: A TLSConfig, True for the system's roots, None for plaintext.
        timeout: The default deadline of a call, retries included, in seconds.
        retry: The backoff of retried calls; None turns retries off.
        options: Extra gRPC channel options.
    """

    def __init__(self, address: str, token: str | None, tls: TLSConfig | bool | None,
                 timeout: float, retry: RetryPolicy | None,
                 options: Sequence[tuple[str, Any]]) -> None:
        self.address = address
        self.timeout = timeout
        self.retry = retry
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ())
        self.channel = make_channel(address, tls, options)
        # The generated stub module has no annotations (it is excluded from type checks).
        self.stub = pb_grpc.ModelManagerStub(self.channel)  # type: ignore[no-untyped-call]

    def budget(self, timeout: float | None) -> float:
        """A call's deadline in seconds: its own, else the default."""
        return self.timeout if timeout is None else timeout

    def unary(self, method: str, request: Any, timeout: float | None, *, retry: bool) -> Any:
        """Calls a ModelManager unary RPC by name.

        Args:
            method: The RPC's name, e.g. "GetStatus".
            request: The request message.
            timeout: The deadline in seconds (None: the default), retries included.
            retry: Whether UNAVAILABLE is retried (only for calls safe to repeat).

        Returns:
            The reply message. A failure raises the matching ModeldError.
        """
        return self.call(getattr(self.stub, method), request, timeout, retry=retry)

    def call(self, rpc: Callable[..., Any], request: Any, timeout: float | None, *,
             retry: bool) -> Any:
        """Calls any unary stub method the way ``unary`` does."""
        def attempt(seconds: float) -> Any:
            return rpc(request, timeout=seconds, metadata=self.metadata)

        try:
            if retry and self.retry is not None:
                return call_with_retry(attempt, self.retry, self.budget(timeout))
            return attempt(self.budget(timeout))
        except grpc.RpcError as err:
            raise self.error(err) from err

    def stream(self, method: str, request: Any,
               timeout: float | None) -> Generator[Any, None, None]:
        """Calls a server-streaming RPC; closing the iterator cancels the stream."""
        call = getattr(self.stub, method)(request, timeout=self.budget(timeout),
                                          metadata=self.metadata)
        try:
            yield from call
        except grpc.RpcError as err:
            raise self.error(err) from err
        finally:
            call.cancel()  # a consumer that stops early must not leave the stream open

    def pages(self, method: str, request: Any, field: str,
              timeout: float | None) -> Iterator[Any]:
        """Yields the items of every page of a paged read, fetching pages lazily."""
        while True:
            page = self.unary(method, request, timeout, retry=True)
            yield from getattr(page, field)
            if not page.next_page_token:
                return
            following = type(request)()
            following.CopyFrom(request)
            following.page_token = page.next_page_token
            request = following

    def connect(self, timeout: float | None) -> None:
        """Waits until the channel is connected; ConnectionFailed after ``timeout``."""
        budget = self.budget(timeout)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=budget)
        except grpc.FutureTimeoutError:
            raise ConnectionFailed(f"cannot connect to {self.address} within {budget:g} s",
                                   grpc.StatusCode.DEADLINE_EXCEEDED) from None

    def error(self, err: grpc.RpcError) -> ModeldError:
        """The ModeldError for a failed call, telling connection failures apart."""
        exc = from_rpc_error(err)
        # UNAVAILABLE from a connected channel is the daemon speaking (e.g. a model still
        # loading); from a channel that is not READY it means nothing reached the daemon.
        if exc.code in _CONNECTION_CODES and not is_connected(self.channel, wait=0.5):
            return ConnectionFailed(f"cannot connect to {self.address}: {exc.message}", exc.code)
        return exc

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self.channel.close()
