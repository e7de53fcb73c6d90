"""The README's Python examples run as written, so they cannot drift from the code.

Every ```python block preceded by `<!-- readme-test: runnable -->` runs in a subprocess,
from the repo root (the examples read data/spambase.csv), against a fresh daemon: the
address the block names (127.0.0.1:50051 or :50077) is replaced by the live one. When a
```text block follows, each of its lines that does not vary between runs (job ids, progress
lines, the elided ones) must appear in the output.

They train five XGBoost versions (about 2-3 minutes on 2 quiet CPUs), so they are marked
`readme`: `make test-readme`, which .ci/run runs after `make test`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon

pytestmark = pytest.mark.readme

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-test: runnable -->"
BLOCK = re.compile(re.escape(MARKER) + r"\n```python\n(.*?)```\n(?:\n```text\n(.*?)```\n)?",
                   re.DOTALL)
ADDRESS = re.compile(r"127\.0\.0\.1:500(51|77)")
PROGRESS = re.compile(r"^  [a-z_]+ +\d+%")


def runnable_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2) or "") for m in BLOCK.finditer(
        (ROOT / "README.md").read_text())]


def stable_lines(output: str) -> list[str]:
    """The documented output lines that are the same in every run."""
    return [line for line in output.splitlines()
            if line and "..." not in line and "JobHandle(" not in line
            and not PROGRESS.match(line)]


def test_the_readme_marks_its_examples() -> None:
    assert len(runnable_blocks()) == 2
    assert (ROOT / "README.md").read_text().count(MARKER) == 2


@pytest.mark.parametrize("index", range(2), ids=["first-session", "client-session"])
def test_a_readme_example_runs_against_a_live_daemon(index: int, daemon: LiveDaemon) -> None:
    code, documented = runnable_blocks()[index]
    assert ADDRESS.search(code), "the block names no daemon address to replace"
    result = subprocess.run([sys.executable, "-c", ADDRESS.sub(daemon.address, code)],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    missing = [line for line in stable_lines(documented) if line not in result.stdout]
    assert missing == [], result.stdout
