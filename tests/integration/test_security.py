"""Tokens with roles, TLS and mutual TLS, limits, metrics and the loopback default."""

from __future__ import annotations

import datetime
import shutil
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from tests.conftest import LiveDaemon, start_daemon, wait_job

READER_TOKEN = "reader-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
def secured(tmp_path: Path, datasets: Path) -> LiveDaemon:
    shutil.copytree(datasets, tmp_path / "data")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# role token\nreader {READER_TOKEN}\noperator {OPERATOR_TOKEN}\n")
    live = start_daemon(tmp_path, token_file=tokens, metrics_listen="127.0.0.1:0")
    yield live
    live.stop()


class TestTokens:
    def test_no_token_is_unauthenticated(self, secured: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            secured.stub.GetStatus(pb.GetStatusRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            secured.stub.GetStatus(pb.GetStatusRequest(), metadata=bearer("wrong-token-123456"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    def test_a_reader_reads_and_predicts_but_cannot_train(self, secured: LiveDaemon) -> None:
        secured.stub.GetStatus(pb.GetStatusRequest(), metadata=bearer(READER_TOKEN))
        train = pb.TrainRequest(model="iris", algorithm="logistic_regression",
                                dataset=pb.Dataset(path="iris.csv", target="species"))
        with pytest.raises(grpc.RpcError) as err:
            secured.stub.Train(train, metadata=bearer(READER_TOKEN))
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "Train needs the operator role; this token is a reader")
        job = secured.stub.Train(train, metadata=bearer(OPERATOR_TOKEN))
        for _ in secured.stub.WatchJob(pb.WatchJobRequest(job_id=job.id),
                                       metadata=bearer(READER_TOKEN)):
            pass
        with pytest.raises(grpc.RpcError) as err:
            secured.stub.Rollback(pb.RollbackRequest(model="iris"), metadata=bearer(READER_TOKEN))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    def test_health_stays_open(self, secured: LiveDaemon) -> None:
        health = health_pb2_grpc.HealthStub(secured.channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service="modeld.v1.ModelManager"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    def test_metrics_are_scraped_and_tokens_never_logged(
            self, secured: LiveDaemon, capsys: pytest.CaptureFixture[str]) -> None:
        secured.stub.GetStatus(pb.GetStatusRequest(), metadata=bearer(READER_TOKEN))
        url = f"http://127.0.0.1:{secured.runtime.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert 'modeld_rpc_requests_total{code="OK",method="GetStatus"}' in text
        assert "modeld_rpc_duration_seconds_bucket" in text
        assert "modeld_jobs_queued 0.0" in text
        captured = capsys.readouterr()
        assert READER_TOKEN not in captured.out + captured.err


def _cert(subject: str, issuer_key: ec.EllipticCurvePrivateKey | None = None,
          issuer: x509.Name | None = None, ca: bool = False) -> tuple[bytes, bytes, object, object]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, key_pem, key, name


class TestTls:
    def test_mutual_tls_accepts_signed_clients_only(self, tmp_path: Path, datasets: Path) -> None:
        ca_pem, _, ca_key, ca_name = _cert("modeld test CA", ca=True)
        server_pem, server_key, _, _ = _cert("localhost", ca_key, ca_name)  # type: ignore[arg-type]
        client_pem, client_key, _, _ = _cert("client", ca_key, ca_name)  # type: ignore[arg-type]
        for name, data in (("ca.pem", ca_pem), ("server.pem", server_pem),
                           ("server.key", server_key)):
            (tmp_path / name).write_bytes(data)
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, tls_cert=tmp_path / "server.pem",
                            tls_key=tmp_path / "server.key", tls_client_ca=tmp_path / "ca.pem")
        target = f"localhost:{live.runtime.port}"
        options = (("grpc.ssl_target_name_override", "localhost"),)
        try:
            good = grpc.secure_channel(target, grpc.ssl_channel_credentials(
                ca_pem, client_key, client_pem), options=options)
            status = pb_grpc.ModelManagerStub(good).GetStatus(pb.GetStatusRequest(), timeout=10)
            assert status.daemon.build_version
            anonymous = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem),
                                            options=options)
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.ModelManagerStub(anonymous).GetStatus(pb.GetStatusRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            good.close()
            anonymous.close()
        finally:
            live.stop()


class TestLimits:
    def test_training_time_limit_fails_the_job_by_name(self, tmp_path: Path,
                                                       datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, train_timeout=0.5)
        try:
            job = live.train("slow", algorithm="random_forest", params={"n_estimators": "2000"})
            assert job.state == pb.JOB_STATE_FAILED
            assert job.error == "exceeded the training time limit (train_timeout=0.5s)"
        finally:
            live.stop()

    def test_training_memory_limit_fails_the_job_by_name(self, tmp_path: Path,
                                                         datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, train_memory_mb=1)
        try:
            job = live.train("big")
            assert job.state == pb.JOB_STATE_FAILED
            assert "over the training memory limit (train_memory_mb=1)" in job.error
            status = live.stub.GetStatus(pb.GetStatusRequest())
            assert status.daemon.jobs_running == 0
        finally:
            live.stop()

    def test_dataset_limits(self, tmp_path: Path, datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, max_dataset_bytes=1000, max_dataset_rows=100)
        try:
            with pytest.raises(grpc.RpcError) as err:
                live.train("spam")
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "more than max_dataset_bytes=1000" in err.value.details()
            (live.data_root / "small.csv").write_text(
                "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(150)))
            job = live.train("rows", path="small.csv", target="y",
                             algorithm="logistic_regression")
            assert job.error == ("ResourceExhausted: dataset 'small.csv' has 150 rows, more than "
                                 "max_dataset_rows=100")
        finally:
            live.stop()

    def test_predict_row_limit(self, tmp_path: Path, datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, max_predict_rows=2)
        try:
            job = live.stub.Train(pb.TrainRequest(
                model="iris", algorithm="logistic_regression",
                dataset=pb.Dataset(path="iris.csv", target="species")))
            wait_job(live.stub, job.id)
            request = pb.PredictRequest(model="iris", dense=pb.DenseRows(
                columns=["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                         "petal width (cm)"], values=[1.0] * 12))
            with pytest.raises(grpc.RpcError) as err:
                live.stub.Predict(request)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED, "3 rows exceed max_predict_rows=2")
        finally:
            live.stop()


def test_without_tokens_a_public_listen_address_narrows_to_loopback(tmp_path: Path,
                                                                    datasets: Path) -> None:
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, listen="0.0.0.0:0")
    try:
        assert live.address.startswith("127.0.0.1:")
        live.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    finally:
        live.stop()
