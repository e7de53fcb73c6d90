"""TLS and mutual TLS: the client verifies the daemon, and presents its own certificate."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import modeld
from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from tests.unit.client_fakes import FakeModelManager

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(folder: Path, name: str, subject: str, extensions: str) -> None:
    """A key and a certificate for `name`, signed by the CA in `folder`."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-subj", subject, "-out", f"{name}.csr", cwd=folder)
    (folder / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
             "-extfile", f"{name}.ext", cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for localhost, and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-subj", "/CN=modeld test CA", "-days", "2", "-out", "ca.pem", cwd=folder)
    _issue(folder, "server", "/CN=localhost",
           "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _issue(folder, "client", "/CN=operator", "extendedKeyUsage=clientAuth\n")
    return folder


@pytest.fixture
def tls_server(pki: Path) -> Iterator[tuple[str, FakeModelManager]]:
    """A fake daemon that requires a client certificate signed by the test CA."""
    fake = FakeModelManager().on("GetStatus", pb.GetStatusResponse())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ModelManagerServicer_to_server(fake, server)
    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}", fake
    server.stop(grace=None)


class TestMutualTLS:
    def test_client_with_ca_and_pair_is_served(self, pki: Path,
                                               tls_server: tuple[str, FakeModelManager]) -> None:
        """With the CA and a client certificate the call goes through."""
        address, fake = tls_server
        tls = modeld.TLSConfig.from_files(pki / "ca.pem", pki / "client.pem", pki / "client.key")
        with modeld.Client(address, tls=tls, timeout=5) as client:
            client.status()
        assert fake.attempts("GetStatus") == 1

    def test_client_without_its_certificate_cannot_connect(
            self, pki: Path, tls_server: tuple[str, FakeModelManager]) -> None:
        """Without a client certificate the handshake fails: ConnectionFailed, no call made."""
        address, fake = tls_server
        tls = modeld.TLSConfig.from_files(pki / "ca.pem")
        with modeld.Client(address, tls=tls, timeout=2, retry=None) as client, \
                pytest.raises(modeld.ConnectionFailed) as caught:
            client.status()
        assert caught.value.message.startswith(f"cannot connect to {address}: ")
        assert fake.attempts("GetStatus") == 0

    def test_plaintext_client_cannot_talk_to_a_tls_daemon(
            self, tls_server: tuple[str, FakeModelManager]) -> None:
        """A plaintext channel to a TLS port fails as a connection failure."""
        address, _ = tls_server
        with modeld.Client(address, timeout=2, retry=None) as client, \
                pytest.raises(modeld.ConnectionFailed):
            client.status()
