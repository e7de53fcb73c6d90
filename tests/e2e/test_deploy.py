"""deploy/: each file is a thin wrapper over the tested install and serve commands.

No image can be built or run here (no docker engine, no cluster), so these tests check what
can be checked: systemd-analyze verifies the unit; the settings each file gives `modeld serve`
(flags and MODELD_* variables) parse with the daemon's own load_settings; each installs with
constraints.txt and the [server] extra; the Dockerfile's health check runs as written
against a live daemon; the Kubernetes probes and limits agree with the settings.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modeld_server.config import Settings, load_settings
from modeld_server.rpc.server import SERVICE_NAME
from tests.conftest import LiveDaemon

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "modeld.service"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES = DEPLOY / "kubernetes.yaml"
INSTALL = "-c constraints.txt '.[server]'"


def _unit_settings() -> Settings:
    text = UNIT.read_text()
    env = dict(re.findall(r"^Environment=(MODELD_\w+)=(.*)$", text, re.MULTILINE))
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.MULTILINE)
    assert exec_start is not None and exec_start.group(1).endswith("/modeld")
    command = exec_start.group(2).split()
    assert command[0] == "serve"
    return load_settings(command[1:], env=env)


def _dockerfile_settings() -> Settings:
    text = DOCKERFILE.read_text()
    env_block = re.search(r"^ENV (.*?)\n(?=\S)", text, re.MULTILINE | re.DOTALL)
    assert env_block is not None
    env = dict(re.findall(r"(MODELD_\w+)=(\S+)", env_block.group(1)))
    command = json.loads(re.search(r"^CMD (.*)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert entrypoint == ["tini", "--", "modeld"] and command[0] == "serve"
    return load_settings(command[1:], env=env)


def _kubernetes_env() -> dict[str, str]:
    return {name: value.strip('"') for name, value in re.findall(
        r"\{name: (MODELD_\w+), value: ([^}]+?)\}", KUBERNETES.read_text())}


class TestSystemdUnit:
    def test_systemd_analyze_verifies_the_unit(self, tmp_path: Path) -> None:
        """The unit as shipped, with ExecStart pointing at this venv's modeld (verify
        checks that the program exists). Unknown keys are warnings: none may appear."""
        tool = shutil.which("systemd-analyze")
        if tool is None:
            pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
        unit = tmp_path / "modeld.service"
        unit.write_text(UNIT.read_text().replace(
            "/opt/modeld/bin/modeld", str(Path(sys.executable).with_name("modeld"))))
        result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                                timeout=60, cwd=tmp_path)
        assert (result.returncode, result.stderr, result.stdout) == (0, "", "")

    def test_its_settings_parse_and_match_the_hardening(self) -> None:
        settings = _unit_settings()
        text = UNIT.read_text()
        writable = re.search(r"^ReadWritePaths=(.*)$", text, re.MULTILINE)
        assert writable is not None
        assert {str(settings.registry), str(settings.state_dir)} <= set(writable.group(1).split())
        for line in ("ProtectSystem=strict", "Restart=on-failure", "KillSignal=SIGTERM",
                     "User=modeld", "NoNewPrivileges=yes"):
            assert re.search(f"^{line}$", text, re.MULTILINE), line
        stop = re.search(r"^TimeoutStopSec=(\d+)$", text, re.MULTILINE)
        assert stop is not None and int(stop.group(1)) > settings.grace_period

    def test_it_installs_with_the_constraints(self) -> None:
        assert f"pip install {INSTALL}" in UNIT.read_text()


class TestDockerfile:
    def test_its_settings_parse(self) -> None:
        settings = _dockerfile_settings()
        assert settings.listen == "0.0.0.0:50051"

    def test_it_installs_with_the_constraints_as_a_non_root_user(self) -> None:
        text = DOCKERFILE.read_text()
        assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
        assert INSTALL in text and re.search(r"^USER modeld$", text, re.MULTILINE)
        assert "install -y --no-install-recommends tini" in text

    def test_its_health_check_runs_against_a_live_daemon(self, daemon: LiveDaemon) -> None:
        """The HEALTHCHECK command as written, with the daemon's address: exit 0."""
        match = re.search(r"^\s+CMD (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
        assert match is not None
        command = json.loads(match.group(1))
        assert command[:3] == ["modelctl", "--address", "127.0.0.1:50051"]
        command[0] = str(Path(sys.executable).with_name("modelctl"))
        command[2] = daemon.address
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


class TestKubernetes:
    def test_its_settings_parse(self) -> None:
        settings = load_settings([], env=_kubernetes_env())
        assert settings.listen == "0.0.0.0:50051"
        assert settings.token_file == Path("/etc/modeld/tokens/tokens")

    def test_probes_use_grpc_health_on_the_listen_port(self) -> None:
        text = KUBERNETES.read_text()
        port = _kubernetes_env()["MODELD_LISTEN"].rpartition(":")[2]
        probes = re.findall(r"grpc: \{port: (\d+), service: ([^}]*)\}", text)
        assert sorted(probes) == sorted([(port, '""'), (port, '""'), (port, SERVICE_NAME)])
        assert "replicas: 2" in text and "ReadWriteMany" in text

    def test_the_memory_limit_covers_the_training_cap(self) -> None:
        text = KUBERNETES.read_text()
        train_mb = int(_kubernetes_env()["MODELD_TRAIN_MEMORY_MB"])
        limit = re.search(r"limits: \{cpu: \"\d+\", memory: (\d+)Gi\}", text)
        assert limit is not None
        assert train_mb < int(limit.group(1)) * 1024 <= train_mb + 2048

    def test_the_token_file_comes_from_the_secret(self) -> None:
        text = KUBERNETES.read_text()
        mount = re.search(r"\{name: tokens, mountPath: (\S+), readOnly: true\}", text)
        assert mount is not None and "secretName: modeld-tokens" in text
        assert _kubernetes_env()["MODELD_TOKEN_FILE"].startswith(mount.group(1) + "/")
