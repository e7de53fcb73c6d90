"""Channels: plaintext or TLS (optionally mutual), and whether one is connected."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

__all__ = ["TLSConfig", "is_connected", "make_channel"]

# The daemon's own default limit; a large Predict must not be refused by the client first.
_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    """TLS settings: the CA that signs the daemon's certificate, and a client pair for mTLS.

    All fields are PEM bytes. With no root certificates gRPC uses the system's.

    Attributes:
        root_certificates: The CA bundle that verifies the daemon.
        certificate_chain: The client's certificate, for mutual TLS.
        private_key: The client's private key, for mutual TLS.
        server_name: Overrides the name checked against the daemon's certificate.
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mutual TLS needs both a client certificate and its private key")

    @classmethod
    def from_files(cls, ca_cert: str | Path | None = None, client_cert: str | Path | None = None,
                   client_key: str | Path | None = None,
                   server_name: str | None = None) -> TLSConfig:
        """Reads PEM files.

        Args:
            ca_cert: The CA bundle; None for the system's.
            client_cert: The client certificate (mutual TLS).
            client_key: The client private key (mutual TLS).
            server_name: Overrides the name checked against the daemon's certificate.

        Returns:
            The config. OSError if a file cannot be read.
        """
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(read(ca_cert), read(client_cert), read(client_key), server_name)


def make_channel(address: str, tls: TLSConfig | bool | None,
                 options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """Opens a channel (lazily: nothing connects until the first call).

    Args:
        address: host:port of the daemon.
        tls: A TLSConfig, True for TLS with the system's roots, None/False for plaintext.
        options: Extra gRPC channel options; they override the defaults.

    Returns:
        The channel.
    """
    merged: dict[str, Any] = dict([("grpc.max_receive_message_length", _MESSAGE_BYTES),
                   ("grpc.max_send_message_length", _MESSAGE_BYTES)])
    merged.update(options)
    if tls is None or tls is False:
        return grpc.insecure_channel(address, options=list(merged.items()))
    config = tls if isinstance(tls, TLSConfig) else TLSConfig()
    if config.server_name:
        merged["grpc.ssl_target_name_override"] = config.server_name
    credentials = grpc.ssl_channel_credentials(
        root_certificates=config.root_certificates, private_key=config.private_key,
        certificate_chain=config.certificate_chain)
    return grpc.secure_channel(address, credentials, options=list(merged.items()))


def is_connected(channel: grpc.Channel, wait: float = 1.0) -> bool:
    """Whether the channel is READY now, without starting a connection attempt.

    Args:
        channel: The channel to look at.
        wait: How long to wait for gRPC to report the state, in seconds.

    Returns:
        True only if the channel reported READY.
    """
    # The public way to read the state: subscribe, take the first report, unsubscribe.
    seen: list[grpc.ChannelConnectivity] = []
    reported = threading.Event()

    def on_change(state: grpc.ChannelConnectivity) -> None:
        seen.append(state)
        reported.set()

    channel.subscribe(on_change, try_to_connect=False)
    try:
        reported.wait(wait)
    finally:
        channel.unsubscribe(on_change)
    return bool(seen) and seen[-1] == grpc.ChannelConnectivity.READY
