"""modelctl's exit codes: 0 ok, 1 server error, 2 usage, 3 cannot connect, 130 interrupted."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import grpc
import pytest
from typer.testing import CliRunner, Result

from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Fail, Running, running_fake

runner = CliRunner()


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


def modelctl(address: str, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["--address", address, *args], input=stdin)


@pytest.fixture
def unused_address() -> Iterator[str]:
    # Bound but never listening: connections are refused and no one else gets the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


class TestSuccess:
    def test_ok_is_zero_with_nothing_on_stderr(self, live: Running) -> None:
        """A successful command exits 0 and writes nothing on stderr."""
        live.fake.on("GetStatus", pb.GetStatusResponse())
        result = modelctl(live.address, "--quiet", "status")
        assert result.exit_code == 0
        assert result.stderr == ""


class TestServerErrors:
    def test_server_error_is_one_with_code_and_message_on_stderr(self, live: Running) -> None:
        """A daemon error exits 1 and prints `error: CODE: message`, no traceback."""
        live.fake.on("ListVersions", Fail(grpc.StatusCode.NOT_FOUND, "model 'ghost' not found"))
        result = modelctl(live.address, "versions", "ghost")
        assert result.exit_code == 1
        assert result.stderr == "error: NOT_FOUND: model 'ghost' not found\n"
        assert result.stdout == ""
        assert "Traceback" not in result.output

    def test_json_errors_are_json_on_stderr(self, live: Running) -> None:
        """With --json the error is a JSON document on stderr with code and message."""
        live.fake.on("Rollback", Fail(grpc.StatusCode.FAILED_PRECONDITION, "no previous version"))
        result = modelctl(live.address, "--json", "rollback", "spam", "--yes")
        assert result.exit_code == 1
        assert json.loads(result.stderr) == {
            "error": {"code": "FAILED_PRECONDITION", "message": "no previous version"}}

    def test_unhealthy_daemon_is_one(self, live: Running) -> None:
        """health exits 1 when the daemon does not report SERVING."""
        live.health.set("", 2)  # NOT_SERVING
        result = modelctl(live.address, "health")
        assert result.exit_code == 1
        assert result.stdout == "NOT_SERVING\n"


class TestUsageErrors:
    def test_missing_required_option_is_two(self, live: Running) -> None:
        """A missing --data is a usage error: exit 2, nothing sent to the daemon."""
        result = modelctl(live.address, "train", "spam", "--algorithm", "xgboost")
        assert result.exit_code == 2
        assert "Missing option '--data'" in result.stderr
        assert live.fake.calls == []

    def test_malformed_param_is_two(self, live: Running) -> None:
        """--param without '=' is a usage error naming the option."""
        result = modelctl(live.address, "train", "spam", "--data", "d.csv", "-a", "xgboost",
                          "--param", "max_depth")
        assert result.exit_code == 2
        assert "Invalid value for --param: 'max_depth' is not name=value" in result.stderr
        assert live.fake.calls == []

    def test_unknown_command_is_two(self, live: Running) -> None:
        """An unknown subcommand is a usage error."""
        assert modelctl(live.address, "frobnicate").exit_code == 2

    def test_unreadable_rows_file_is_two(self, live: Running, tmp_path: object) -> None:
        """predict from a missing file is a usage error, before any call."""
        result = modelctl(live.address, "predict", "spam", "/no/such/rows.csv")
        assert result.exit_code == 2
        assert "cannot read /no/such/rows.csv" in result.stderr
        assert live.fake.calls == []


class TestCannotConnect:
    def test_unreachable_daemon_is_three_naming_the_address(self, unused_address: str) -> None:
        """A refused connection exits 3 at once, and the message names the address tried."""
        result = modelctl(unused_address, "status")
        assert result.exit_code == 3
        assert result.stderr.startswith(f"error: cannot connect to {unused_address}: ")

    def test_json_connection_error_keeps_the_code(self, unused_address: str) -> None:
        """With --json the connection error is JSON with code UNAVAILABLE."""
        result = modelctl(unused_address, "--json", "versions", "spam")
        assert result.exit_code == 3
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "UNAVAILABLE"
        assert error["message"].startswith(f"cannot connect to {unused_address}: ")
