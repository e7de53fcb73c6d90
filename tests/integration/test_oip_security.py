"""V2 under the daemon's tokens (gRPC and HTTP) and TLS (HTTP), as Predict is."""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.conftest import start_daemon
from tests.integration.oip_daemon import Served, serve
from tests.integration.test_security import OPERATOR_TOKEN, READER_TOKEN, _cert

READER = {"authorization": f"Bearer {READER_TOKEN}"}
OPERATOR = {"authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("oip-tokens")
    tokens = base / "tokens"
    tokens.write_text(f"reader {READER_TOKEN}\noperator {OPERATOR_TOKEN}\n")
    daemon = serve(base, "--token-file", str(tokens), http=True)
    try:
        daemon.train("iris", "iris.csv", "species", "logistic_regression",
                     metadata=(("authorization", f"Bearer {OPERATOR_TOKEN}"),))
        yield daemon
    finally:
        daemon.stop()


def iris_input(module: object) -> object:
    tensor = module.InferInput("input", [1, 4], "FP64")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
    return tensor


def failure(call: object) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as err:
        call()  # type: ignore[operator]
    return err.value.status(), err.value.message()


class TestGrpcTokens:
    def test_health_is_open_and_the_rest_needs_a_token(self, secured: Served) -> None:
        with triton_grpc.InferenceServerClient(secured.address) as client:
            assert client.is_server_live() and client.is_server_ready()
            assert failure(lambda: client.is_model_ready("iris")) == (
                "StatusCode.UNAUTHENTICATED",
                "missing or unknown token: send metadata 'authorization: Bearer TOKEN'")

    def test_a_reader_infers_but_cannot_load(self, secured: Served) -> None:
        with triton_grpc.InferenceServerClient(secured.address) as client:
            result = client.infer("iris", [iris_input(triton_grpc)], headers=READER)
            assert [v.decode() for v in result.as_numpy("label")] == ["setosa"]
            assert client.get_model_repository_index(headers=READER).models[0].name == "iris"
            assert failure(lambda: client.load_model("iris", headers=READER)) == (
                "StatusCode.PERMISSION_DENIED",
                "RepositoryModelLoad needs the operator role; this token is a reader")
            client.load_model("iris", headers=OPERATOR)


class TestHttpTokens:
    def test_health_is_open_and_the_rest_needs_a_token(self, secured: Served) -> None:
        client = triton_http.InferenceServerClient(secured.http_address)
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert failure(lambda: client.get_model_metadata("iris")) == (
                "401", "missing or unknown token: send header 'Authorization: Bearer TOKEN'")
        finally:
            client.close()

    def test_a_reader_infers_but_cannot_load(self, secured: Served) -> None:
        client = triton_http.InferenceServerClient(secured.http_address)
        try:
            result = client.infer("iris", [iris_input(triton_http)], headers=READER)
            assert [v.decode() for v in result.as_numpy("label")] == ["setosa"]
            assert failure(lambda: client.load_model("iris", headers=READER)) == (
                "403", "RepositoryModelLoad needs the operator role; this token is a reader")
            client.load_model("iris", headers=OPERATOR)
        finally:
            client.close()


def test_http_serves_tls_with_client_certificates(tmp_path: Path, datasets: Path) -> None:
    """The HTTP port takes --tls-cert/--tls-key/--tls-client-ca as the gRPC port does."""
    ca_pem, _, ca_key, ca_name = _cert("modeld test CA", ca=True)
    server_pem, server_key, _, _ = _cert("localhost", ca_key, ca_name)  # type: ignore[arg-type]
    client_pem, client_key, _, _ = _cert("client", ca_key, ca_name)  # type: ignore[arg-type]
    for name, data in (("ca.pem", ca_pem), ("server.pem", server_pem), ("server.key", server_key),
                       ("client.pem", client_pem), ("client.key", client_key)):
        (tmp_path / name).write_bytes(data)
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, tls_cert=tmp_path / "server.pem",
                        tls_key=tmp_path / "server.key", tls_client_ca=tmp_path / "ca.pem",
                        http_listen="127.0.0.1:0")
    url = f"https://localhost:{live.runtime.http_port}/v2"
    try:
        context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            assert json.loads(response.read())["name"] == "modeld"
        anonymous = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url, context=anonymous, timeout=30).read()
    finally:
        live.stop()
