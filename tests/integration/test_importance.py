"""Feature importance in the manifest, through a live daemon: the estimator's own (one-hot
summed back to the user's column) and permutation importance on held-out rows; shown by
GetVersion and modelctl show."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from modeld_server import artifacts
from tests.conftest import LiveDaemon


@pytest.mark.parametrize("algorithm", ["xgboost", "logistic_regression"])
def test_importance_in_the_users_columns(daemon: LiveDaemon, algorithm: str) -> None:
    """mixed.csv (colour categorical): three importances, by column name, matching the
    saved estimator's own numbers summed over each column's one-hot columns; permutation
    importance on the first fold's 200 held-out rows, three repeats."""
    job = daemon.train("mixed", path="mixed.csv", target="label", algorithm=algorithm,
                       cv_folds=2)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    version = daemon.stub.GetVersion(pb.GetVersionRequest(model="mixed", version=1))
    manifest = json.loads(version.manifest_json)
    found = manifest["feature_importance"]
    own = found["estimator"]
    assert set(own) == {"color", "size [cm]", "weight"}
    assert sum(own.values()) == pytest.approx(1.0)

    store = daemon.runtime.service.store
    fitted = artifacts.load(store.paths("mixed").version(1), manifest["format"], algorithm,
                            "classification")
    est = fitted.estimator
    raw = (np.asarray(est.feature_importances_) if algorithm == "xgboost"
           else np.abs(np.atleast_2d(est.coef_)).sum(axis=0))
    # numeric columns first (size [cm], weight), then colour's one-hot columns
    expected = {"size [cm]": raw[0], "weight": raw[1], "color": raw[2:].sum()}
    total = sum(expected.values())
    assert own == pytest.approx({k: v / total for k, v in expected.items()})

    permutation = found["permutation"]
    assert (permutation["metric"], permutation["rows"], permutation["repeats"]) == (
        "accuracy", 200, 3)
    assert set(permutation["drop"]) == {"color", "size [cm]", "weight"}
    assert permutation["drop"]["color"] > permutation["drop"]["weight"]  # colour drives label

    resources = manifest["resources"]
    assert 20 < resources["peak_rss_mib"] < daemon.settings.train_memory_mb
    assert resources["peak_fit_process_rss_mib"] >= 0

    shown = CliRunner().invoke(app, ["--address", daemon.address, "show", "mixed", "1"])
    assert shown.exit_code == 0, shown.output
    assert "feature importance (top 3; permutation: accuracy drop on 200 held-out rows x 3)" \
        in shown.output
