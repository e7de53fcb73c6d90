"""--no-fast-paths: every answer equals the one the fast paths give.

The fast paths (see modeld_server/fastpaths.py) re-implement library internals. A daemon
started with them off, on the same registry, must answer Predict identically and write the
same row hashes when it trains; a library upgrade that breaks one of them fails here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import fastpaths
from modeld_server.registry.layout import MANIFEST
from modeld_server.registry.store import RegistryStore
from modeld_server.serving.loaded import WALKER_AFTER_CALLS
from modeld_server.training.gate import LABELED_ROWS_FILE, ROWS_FILE
from tests.conftest import LiveDaemon, start_daemon
from tests.integration.test_predict import dense_request, records_request

# (model, dataset, target, algorithm): each fast path of Predict has one.
MODELS = [
    ("xgb", "spambase.csv", "is_spam", "xgboost"),  # XGBoost's C predict
    ("logreg", "spambase.csv", "is_spam", "logistic_regression"),  # the folded affine map
    ("xgb-reg", "diabetes.csv", "target", "xgboost"),  # inplace predict, regression
    ("iris", "iris.csv", "species", "logistic_regression"),  # three classes
]


def _answers(live: LiveDaemon, data: Path) -> dict[str, list[pb.PredictResponse]]:
    out = {}
    for model, path, target, _ in MODELS:
        rows = pd.read_csv(data / path).drop(columns=target).iloc[:40]
        out[model] = [live.stub.Predict(records_request(model, rows.to_dict("records"))),
                      live.stub.Predict(dense_request(model, rows)),
                      live.stub.Predict(records_request(model, rows.iloc[:1].to_dict("records")))]
    return out


def _one_row_equals_its_batch(live: LiveDaemon, data: Path) -> None:
    """A binary XGBoost model answers one row through LoadedModel._one_binary and a batch
    through the array path: the same numbers and labels, bit for bit."""
    rows = pd.read_csv(data / "spambase.csv").drop(columns="is_spam").iloc[:30]
    batch = live.stub.Predict(dense_request("xgb", rows))
    for i in range(len(rows)):
        one = live.stub.Predict(dense_request("xgb", rows.iloc[i:i + 1]))
        assert list(one.labels) == [batch.labels[i]]
        assert list(one.probabilities) == list(batch.probabilities[2 * i:2 * i + 2])


def _single_rows(live: LiveDaemon, data: Path) -> dict[str, list[pb.PredictResponse]]:
    """40 one-row calls per XGBoost model. With the fast paths on, enough first for the
    version to build its tree walker (xgb_walk), waited for, so these are the walker's."""
    out = {}
    for model, path, target in (("xgb", "spambase.csv", "is_spam"),
                                ("xgb-reg", "diabetes.csv", "target")):
        rows = pd.read_csv(data / path).drop(columns=target).iloc[:40]
        loaded = live.runtime.service.serving.get(model)
        if fastpaths.enabled():
            for i in range(WALKER_AFTER_CALLS):
                live.stub.Predict(dense_request(model, rows.iloc[i % 40:i % 40 + 1]))
            assert loaded.walker_done.wait(120) and loaded._walker is not None, model
        else:
            assert loaded._walker is None
        out[model] = [live.stub.Predict(dense_request(model, rows.iloc[i:i + 1]))
                      for i in range(len(rows))]
    return out


def test_predict_and_training_answer_the_same_with_the_fast_paths_off(
        tmp_path: Path, datasets: Path) -> None:
    shutil.copytree(datasets, tmp_path / "data")
    fast = start_daemon(tmp_path, fast_paths=True)  # on, whatever MODELD_FAST_PATHS says
    try:
        assert fastpaths.enabled()
        for model, path, target, algorithm in MODELS:
            job = fast.train(model, path, target, algorithm, cv_folds=2)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        on = _answers(fast, tmp_path / "data")
        _one_row_equals_its_batch(fast, tmp_path / "data")
        walked = _single_rows(fast, tmp_path / "data")
        _one_row_equals_its_batch(fast, tmp_path / "data")  # now through the walker
    finally:
        fast.stop()
    slow = start_daemon(tmp_path, fast_paths=False)
    try:
        assert not fastpaths.enabled()
        off = _answers(slow, tmp_path / "data")
        library = _single_rows(slow, tmp_path / "data")
        # Training with them off (pandas' own row hashing in the worker) saves the same rows.
        job = slow.train("logreg", "spambase.csv", "is_spam", "logistic_regression",
                         cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    finally:
        slow.stop()
    for model, answers in walked.items():  # XGBoost's numbers, not close to them
        assert [(list(a.probabilities), list(a.values), list(a.labels)) for a in answers] == [
            (list(a.probabilities), list(a.values), list(a.labels)) for a in library[model]]
    for model, *_ in MODELS:
        for got, want in zip(off[model], on[model], strict=True):
            assert (got.version, list(got.labels), list(got.classes)) == (
                want.version, list(want.labels), list(want.classes)), model
            for field in ("probabilities", "values", "anomaly_scores"):
                np.testing.assert_allclose(np.array(getattr(got, field)),
                                           np.array(getattr(want, field)), rtol=1e-9,
                                           atol=1e-12, err_msg=f"{model} {field}")
    paths = RegistryStore(tmp_path / "registry").paths("logreg")
    for name in (ROWS_FILE, LABELED_ROWS_FILE):
        first, second = (paths.version(v) / name for v in (1, 2))
        assert first.read_bytes() == second.read_bytes(), name
    # The validation report (label names from the scan's bytes, or pandas reading the
    # column), the label encoding, the metrics and the reference profile: the same.
    manifests = [json.loads((paths.version(v) / MANIFEST).read_text()) for v in (1, 2)]
    for key in ("validation", "classes", "metrics", "confusion_matrix", "profile", "dataset"):
        assert manifests[0][key] == manifests[1][key], key
