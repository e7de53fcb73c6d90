"""The core's modules form layers: the service composes its parts, none of them imports it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "modeld_server"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_part_of_the_service_imports_the_service() -> None:
    """lifecycle.py was a mixin importing service.py back (under TYPE_CHECKING)."""
    for name in ("lifecycle.py", "jobhooks.py", "types.py"):
        assert "modeld_server.service" not in _imports(PACKAGE / name), name


def test_mypy_strict_has_no_exception_for_hand_written_modules() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for override in config["tool"]["mypy"].get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        assert not [m for m in modules if m.startswith("modeld_server")], override


def test_only_the_composition_root_builds_the_core() -> None:
    """compose.py is the one place the service and its parts are constructed (a training
    worker, a process of its own, opens the registry store itself)."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "compose.py":
            continue
        text = path.read_text()
        for built in ("ModelService(", "RegistryIndex(", "JobManager(", "Scheduler(",
                      "RegistryWatcher(", "DriftMonitor(", "Lifecycle("):
            assert f" {built}" not in text and f"={built}" not in text, (path.name, built)
