"""The `modeld` package's public surface: what it exports, imports, sends and returns."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest

import modeld
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Running, job, metric, running_fake

FORBIDDEN_IMPORTS = ["modeld_server", "sklearn", "xgboost", "pandas", "numpy", "typer", "rich"]


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


# The Client method for each RPC: reads of collections drop the verb (status, versions).
RPC_METHODS = {
    "Train": "train", "WatchJob": "watch_job", "GetJob": "get_job", "CancelJob": "cancel_job",
    "ListJobs": "list_jobs", "GetStatus": "status", "ListVersions": "versions",
    "GetVersion": "get_version", "Rollback": "rollback", "Predict": "predict",
    "Reload": "reload", "Promote": "promote", "GetPolicy": "get_policy",
    "SetPolicy": "set_policy", "SetAlias": "set_alias", "DeleteAlias": "delete_alias",
    "SetSchedule": "set_schedule", "GetSchedule": "get_schedule",
    "DeleteSchedule": "delete_schedule", "GetDrift": "get_drift",
}


class TestImports:
    def test_importing_modeld_pulls_in_no_server_ml_or_cli_library(self) -> None:
        """`import modeld` (and using Client) loads none of the server, ML or CLI libraries."""
        code = (
            "import json, sys\n"
            "import modeld\n"
            "modeld.Client('127.0.0.1:1').close()\n"
            f"print(json.dumps([m for m in {FORBIDDEN_IMPORTS!r} if m in sys.modules]))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        assert json.loads(out.stdout) == []


class TestAll:
    def test_all_names_exist(self) -> None:
        """Everything in __all__ is importable from `modeld`."""
        for name in modeld.__all__:
            assert hasattr(modeld, name), name

    def test_all_matches_the_public_names(self) -> None:
        """__all__ lists exactly the public, non-module attributes of `modeld`."""
        public = {name for name, value in vars(modeld).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType)
                  and name != "annotations"}  # the __future__ feature, not an export
        assert public == set(modeld.__all__)

    def test_all_has_no_duplicates(self) -> None:
        """Each export is listed once."""
        assert len(modeld.__all__) == len(set(modeld.__all__))

    def test_exported_classes_are_documented(self) -> None:
        """Every exported class and function has a docstring."""
        for name in modeld.__all__:
            value = getattr(modeld, name)
            if isinstance(value, type) or callable(value):
                assert (value.__doc__ or "").strip(), name


class TestClientMethods:
    def test_every_rpc_has_a_method(self) -> None:
        """Client has a method for each RPC of modeld.v1.ModelManager (a new RPC fails here)."""
        service = pb.DESCRIPTOR.services_by_name["ModelManager"]
        assert {m.name for m in service.methods} == set(RPC_METHODS)
        for name in RPC_METHODS.values():
            assert callable(getattr(modeld.Client, name, None)), name

    def test_public_methods_document_args_and_returns(self) -> None:
        """Public methods taking arguments say what they take and return."""
        for name in dir(modeld.Client):
            fn = getattr(modeld.Client, name)
            if name.startswith("_") or not callable(fn) or name in ("close",):
                continue
            doc = fn.__doc__ or ""
            assert "Args:" in doc, name
            assert "Returns:" in doc or "Raises:" in doc, name


class TestToken:
    def test_token_is_sent_as_bearer_authorization(self, live: Running) -> None:
        """Client(token=...) sends `authorization: Bearer <token>` on every call."""
        live.fake.on("GetStatus", pb.GetStatusResponse())
        with modeld.Client(live.address, token="s3cret") as client:
            client.status()
        assert live.fake.calls[0].metadata["authorization"] == "Bearer s3cret"

    def test_no_token_sends_no_authorization(self, live: Running) -> None:
        """Without a token nothing is sent that the daemon could mistake for one."""
        live.fake.on("GetStatus", pb.GetStatusResponse())
        with modeld.Client(live.address) as client:
            client.status()
        assert "authorization" not in live.fake.calls[0].metadata


class TestResults:
    def test_results_are_frozen_dataclasses_keeping_the_message(self, live: Running) -> None:
        """Replies become frozen dataclasses; `.raw` is the message itself."""
        message = job(state=pb.JOB_STATE_SUCCEEDED, version=4,
                      metrics={"f1": metric(0.9, 0.01, (0.89, 0.91))})
        live.fake.on("GetJob", message)
        with modeld.Client(live.address) as client:
            got = client.get_job("j0001")
        assert got.raw == message
        assert got.state is modeld.JobState.SUCCEEDED and got.done
        assert got.metrics["f1"] == modeld.Metric(0.9, 0.01, (0.89, 0.91))
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.version = 5  # type: ignore[misc]

    def test_train_builds_the_request_from_plain_values(self, live: Running) -> None:
        """Params become JSON literals, task an enum, activate=False sets no_activate."""
        live.fake.on("Train", job())
        with modeld.Client(live.address) as client:
            handle = client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost",
                                  params={"max_depth": 6, "eta": 0.1, "criterion": "gini",
                                          "verbose": True, "limit": None},
                                  folds=3, seed=7, task="classification", activate=False)
        request = live.fake.requests("Train")[0]
        assert dict(request.params) == {"max_depth": "6", "eta": "0.1", "criterion": "gini",
                                        "verbose": "true", "limit": "null"}
        assert (request.model, request.dataset.path, request.dataset.target) == (
            "spam", "spambase.csv", "is_spam")
        assert request.task == pb.TASK_CLASSIFICATION
        assert request.cv_folds == 3 and request.seed == 7 and request.no_activate
        assert handle.job is not None and handle.job.state is modeld.JobState.QUEUED

    def test_seed_unset_stays_unset(self, live: Running) -> None:
        """seed=None leaves the optional field absent so the daemon applies its default."""
        live.fake.on("Train", job())
        with modeld.Client(live.address) as client:
            client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost")
        assert not live.fake.requests("Train")[0].HasField("seed")

    def test_to_dict_is_json_ready_without_raw(self, live: Running) -> None:
        """to_dict drops .raw and writes enums as strings and times as ISO 8601."""
        message = job(state=pb.JOB_STATE_RUNNING)
        message.created_at.FromSeconds(1_700_000_000)
        live.fake.on("GetJob", message)
        with modeld.Client(live.address) as client:
            data = modeld.types.to_dict(client.get_job("j0001"))
        assert "raw" not in data
        assert data["state"] == "running"
        assert data["created_at"] == "2023-11-14T22:13:20+00:00"
        assert data["started_at"] is None
        json.dumps(data)

    def test_health_reports_the_serving_status(self, live: Running) -> None:
        """health() asks grpc.health.v1 and returns the status name."""
        with modeld.Client(live.address) as client:
            assert client.health() == "SERVING"

    def test_health_of_an_unknown_service_is_service_unknown(self, live: Running) -> None:
        """The health protocol's NOT_FOUND for an unknown service reads as SERVICE_UNKNOWN."""
        with modeld.Client(live.address) as client:
            assert client.health("no.such.Service") == "SERVICE_UNKNOWN"


class TestTLS:
    def test_client_pair_needs_both_halves(self) -> None:
        """A client certificate without its key (or the reverse) is refused early."""
        with pytest.raises(ValueError, match="both a client certificate and its private key"):
            modeld.TLSConfig(certificate_chain=b"cert")
