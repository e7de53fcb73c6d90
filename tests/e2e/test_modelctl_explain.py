"""modelctl predict --explain and freshness warnings in status, as a subprocess."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.test_modelctl import Daemon, Run, as_json, ok, run_modelctl


@pytest.fixture
def modelctl(daemon: Daemon) -> Run:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_modelctl(daemon.address, *args, stdin=stdin)
    return run


def test_predict_explain_and_a_status_warning(modelctl: Run, daemon: Daemon) -> None:
    """Explanations keyed by the CSV's columns add up to the margin; a policy the active
    version misses marks it in status, which still exits 0."""
    ok(modelctl("train", "mixed", "--data", "mixed.csv", "--target", "label", "-a", "xgboost",
                "--folds", "2", "-f", "-q"))
    lines = (daemon.data_root / "mixed.csv").read_text().splitlines()[:4]
    rows = daemon.data_root / "rows.csv"
    rows.write_text("\n".join(lines) + "\n")
    data = as_json(modelctl("--json", "predict", "mixed", str(rows), "--explain"))
    assert len(data["predictions"]) == 3
    for p in data["predictions"]:
        e = p["explanation"]
        assert set(e["contributions"]) == {"color", "size [cm]", "weight"}
        assert e["class_label"] == "yes"
        assert e["base_value"] + sum(e["contributions"].values()) == pytest.approx(
            e["margin"], abs=1e-5)
    table = ok(modelctl("predict", "mixed", str(rows), "--explain")).splitlines()
    assert table[4].split()[:4] == ["ROW", "CLASS", "MARGIN", "BASE"]
    assert len(table) == 8

    ok(modelctl("policy", "set", "mixed", "--min-training-rows", "1000000"))
    status = ok(modelctl("status")).splitlines()
    assert status[2].split()[:3] == ["mixed", "!", "v1"]
    assert status[3].startswith("! mixed v1: trained on 400 rows, fewer than the policy's "
                                "min_training_rows 1000000")
