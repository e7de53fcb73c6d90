"""`pip install modeld` without extras: the client alone, in a fresh venv, against a live daemon.

The wheel is built from this tree with the project's own setuptools (no build isolation, so
no download); the fresh venv installs it with constraints.txt from pip's cache or PyPI. The
daemon runs in this process, from the project's venv (the `daemon` fixture). Part of
`make test` (about 20 s); `make test-install` runs it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
MAX_INSTALLED_MB = 60
# What the daemon needs and a client must not get: the ML stack and the server's own libraries.
SERVER_ONLY = ["sklearn", "xgboost", "pandas", "numpy", "scipy", "pyarrow", "structlog",
               "watchdog", "grpc_reflection"]


def _run(*args: str | Path, timeout: float = 600, **kwargs: object
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELD_", "VIRTUAL_ENV"))}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)  # type: ignore[call-overload]


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding `pip install modeld` (no extra), from a wheel built here."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    # A copy, so the build's egg-info and build/ folders never land in the working tree.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv*", "var", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache",
        ".mypy_cache", ".ruff_cache", ".hypothesis", "bench"))
    _ok(_run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--disable-pip-version-check", "-q", source, "-w", base / "wheels"))
    wheels = list((base / "wheels").glob("modeld-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / "bin" / "python"
    _ok(_run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-c", ROOT / "constraints.txt", wheels[0]))
    yield base / "venv"


def _client_python(client_venv: Path, code: str) -> str:
    return _ok(_run(client_venv / "bin" / "python", "-c", code, cwd=client_venv))


class TestClientOnlyInstall:
    def test_import_modeld_works_and_no_server_library_is_installed(
            self, client_venv: Path) -> None:
        """`import modeld` works; sklearn, xgboost, pandas and the rest are not installed."""
        code = ("import importlib.util, json, modeld\n"
                "print(json.dumps({'client': hasattr(modeld, 'Client'), 'installed': "
                f"[m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)]}}))")
        assert json.loads(_client_python(client_venv, code)) == {"client": True,
                                                                 "installed": []}

    def test_installed_size_is_under_the_limit(self, client_venv: Path) -> None:
        """Every file pip installed for modeld and its dependencies (pip itself aside)."""
        code = ("import json, importlib.metadata as md\n"
                "sizes = {d.metadata['Name']: sum(f.locate().stat().st_size for f in d.files or []"
                " if f.locate().is_file()) for d in md.distributions()}\n"
                "print(json.dumps(sizes))")
        sizes = json.loads(_client_python(client_venv, code))
        sizes.pop("pip", None)
        sizes.pop("setuptools", None)
        total_mb = sum(sizes.values()) / 1e6
        assert "modeld" in sizes and "grpcio" in sizes
        print(f"client install: {total_mb:.1f} MB")
        assert total_mb < MAX_INSTALLED_MB, sorted(sizes.items(), key=lambda kv: -kv[1])

    def test_modelctl_help_runs(self, client_venv: Path) -> None:
        out = _ok(_run(client_venv / "bin" / "modelctl", "--help"))
        assert "Train, version, serve and roll back models" in out

    def test_modelctl_health_asks_a_live_daemon(self, client_venv: Path,
                                                daemon: LiveDaemon) -> None:
        """grpc.health.v1's stubs come with the client (grpcio-health-checking)."""
        out = _ok(_run(client_venv / "bin" / "modelctl", "--address", daemon.address,
                       "health"))
        assert out == "SERVING\n"

    def test_modeld_serve_says_what_to_install(self, client_venv: Path) -> None:
        """Without the server extra: one line naming the install command, exit code 2."""
        result = _run(client_venv / "bin" / "modeld", "serve", "--listen", "127.0.0.1:0")
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("modeld serve needs the server part (missing: ")
        assert result.stderr.endswith("pip install 'modeld[server]'\n")
        assert "scikit-learn" in result.stderr and "xgboost-cpu" in result.stderr

    def test_client_trains_and_predicts_against_a_live_daemon(
            self, client_venv: Path, daemon: LiveDaemon) -> None:
        """The installed client trains, predicts and gets typed errors from the daemon."""
        code = f"""
import csv, json
from modeld import Client, NotFound
with Client({daemon.address!r}) as client:
    done = client.train("spam", "spambase.csv", "is_spam", algorithm="logistic_regression",
                        folds=2).wait(timeout=300)
    with open({str(daemon.data_root / "spambase.csv")!r}) as f:
        row = next(csv.DictReader(f))
    p = client.predict("spam", [{{k: float(v) for k, v in row.items() if k != "is_spam"}}])
    try:
        client.predict("nope", [{{"a": 1.0}}])
        error = None
    except NotFound as e:
        error = e.message
    print(json.dumps([done.state, done.version, p.version, len(list(p)), error]))
"""
        assert json.loads(_client_python(client_venv, code)) == [
            "succeeded", 1, 1, 1, "model 'nope' not found"]
