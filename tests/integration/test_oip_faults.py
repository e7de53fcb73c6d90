"""V2's repository calls when the disk disagrees: a version that cannot load, one not loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from modeld.v1 import model_manager_pb2 as pb
from tests.integration.oip_daemon import Served, serve


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """iris v1 and v2 (active); --keep-loaded 0, so v1 leaves memory once v2 serves."""
    daemon = serve(tmp_path_factory.mktemp("oip-faults"), "--keep-loaded", "0")
    try:
        for _ in range(2):
            daemon.train("iris", "iris.csv", "species", "logistic_regression")
        yield daemon
    finally:
        daemon.stop()


def test_a_version_not_in_memory_is_not_ready_and_indexed_unavailable(
        two_versions: Served) -> None:
    with triton.InferenceServerClient(two_versions.address) as client:
        assert client.is_model_ready("iris") and client.is_model_ready("iris", "2")
        assert not client.is_model_ready("iris", "1")
        index = [(m.version, m.state, m.reason) for m in
                 client.get_model_repository_index().models]
        assert index == [("2", "READY", "active"),
                         ("1", "UNAVAILABLE", "inactive, not loaded; ModelInfer with "
                                              "model_version \"1\" loads it")]
        assert list(client.get_model_metadata("iris").versions) == ["2"]


def test_loading_a_version_whose_files_are_damaged_changes_nothing(
        two_versions: Served) -> None:
    """The version is loaded before the pointer moves: refused, v2 keeps answering."""
    artifact = two_versions.base / "registry" / "iris" / "versions" / "1" / "pipeline.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    stub = service_pb2_grpc.GRPCInferenceServiceStub(two_versions.channel)
    try:
        with pytest.raises(Exception) as err:
            stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(
                model_name="iris", parameters={"version": service_pb2.ModelRepositoryParameter(
                    int64_param=1)}), timeout=60)
        assert err.value.code().name == "FAILED_PRECONDITION"  # type: ignore[attr-defined]
        assert err.value.details().startswith(  # type: ignore[attr-defined]
            "model 'iris' v1 cannot be loaded: ")
        status = two_versions.stub.GetStatus(pb.GetStatusRequest(model="iris")).models[0]
        assert (status.active_version, status.loaded_version) == (2, 2)
    finally:
        artifact.write_bytes(original)


def test_unknown_load_target_is_not_found(two_versions: Served) -> None:
    with triton.InferenceServerClient(two_versions.address) as client, \
            pytest.raises(InferenceServerException) as err:
        client.load_model("nope")
    assert (err.value.status(), err.value.message()) == ("StatusCode.NOT_FOUND",
                                                         "model 'nope' not found")
