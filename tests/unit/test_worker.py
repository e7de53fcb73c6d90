"""training/worker.py: when the worker may write into its staging folder."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modeld_server.errors import FailedPrecondition, NotFound
from modeld_server.monitoring import profile
from modeld_server.registry.store import RegistryStore
from modeld_server.training import preheat, worker
from modeld_server.training.datasets import resolve_dataset
from modeld_server.training.messages import Failure, Progress, Result
from modeld_server.training.prepare import prepare
from modeld_server.types import DatasetSpec, Task, TrainSpec

ROOT = Path(__file__).resolve().parents[2]


def test_before_save_runs_before_anything_is_written(tmp_path: Path) -> None:
    """The hook that joins the builder lock runs once, with the staging folder still empty."""
    shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
    spec = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                     algorithm="logistic_regression",
                     task=Task.CLASSIFICATION, cv_folds=2)
    staging = tmp_path / "staging"
    staging.mkdir()
    seen: list[list[str]] = []
    worker.train(spec, tmp_path, staging, lambda *a: None, cpus=1,
                 before_save=lambda: seen.append(os.listdir(staging)))
    assert seen == [[]]
    assert os.listdir(staging)


def test_a_swept_folder_is_refused(tmp_path: Path) -> None:
    """A worker whose daemon died and whose folder was swept raises instead of writing."""
    store = RegistryStore(tmp_path / "registry")
    staging = store.begin_staging("m")
    assert staging.lock_fd is not None
    os.close(staging.lock_fd)  # the daemon died
    staging.lock_fd = None
    store.clean_stale_staging()
    with pytest.raises(FailedPrecondition, match=(
            rf"^staging folder {staging.path} was swept: the daemon that started this job "
            "is gone$")):
        worker._join_builders(staging.path)


def _received(conn: Any) -> list[object]:
    """Everything sent before the worker closed its end."""
    out = []
    with contextlib.suppress(EOFError):
        while True:
            out.append(conn.recv())
    return out


def test_the_worker_reports_in_typed_messages(tmp_path: Path) -> None:
    """Over a real pipe: Progress messages, then one Result holding the manifest fields."""
    shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
    spec = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                     algorithm="logistic_regression",
                     task=Task.CLASSIFICATION, cv_folds=2)
    staging = RegistryStore(tmp_path / "registry").begin_staging("m")
    parent, child = multiprocessing.Pipe()
    worker.run(spec.to_json(), str(tmp_path), str(staging.path), child, cpus=1)
    *progress, outcome = _received(parent)
    assert progress and all(isinstance(m, Progress) for m in progress)
    assert [m.phase for m in progress if isinstance(m, Progress)][:2] == ["loading", "validating"]
    assert isinstance(outcome, Result)
    assert outcome.fields["algorithm"] == "logistic_regression"
    assert outcome.fields["features"] == list(spec_features(tmp_path / "spambase.csv"))


def test_a_failed_training_sends_one_failure(tmp_path: Path) -> None:
    """A domain error reaches the runner as Failure(its class name, its message), last."""
    spec = TrainSpec(model="m", dataset=DatasetSpec("absent.csv", target="is_spam"),
                     algorithm="logistic_regression",
                     task=Task.CLASSIFICATION)
    parent, child = multiprocessing.Pipe()
    worker.run(spec.to_json(), str(tmp_path), str(tmp_path / "staging"), child)
    with pytest.raises(NotFound) as info:
        resolve_dataset(tmp_path, "absent.csv")
    assert _received(parent)[-1:] == [Failure("NotFound", info.value.message)]
    assert str(Failure("NotFound", "x")) == "NotFound: x"


def spec_features(path: Path) -> list[str]:
    """The CSV's columns less the target, in file order."""
    return [c for c in path.read_text().split("\n", 1)[0].split(",") if c != "is_spam"]


class TestReferenceProfileBesideTheFolds:
    """The features' profiles, made in pieces beside the folds' metrics, are the profile
    made in one go after the final fit."""

    @pytest.mark.parametrize("pieces", [1, 2, 3, 4, 7])
    def test_pieces_merge_to_the_whole_profile(self, tmp_path: Path, pieces: int) -> None:
        preheat._rows().to_csv(tmp_path / "rows.csv", index=False)  # numbers and a text column
        spec = TrainSpec(model="m", dataset=DatasetSpec("rows.csv", target="label"),
                         algorithm="xgboost", task=Task.CLASSIFICATION, cv_folds=2)
        data = prepare(spec, tmp_path / "rows.csv", 1000)
        assert data.schema.categorical == ("colour",)
        merged: dict[str, Any] = {}
        for piece in worker._profile_pieces(data, pieces):
            merged.update(piece())
        whole = profile.feature_profiles(data.schema.numeric, data.schema.categorical, data.x)
        assert list(merged) == list(whole)
        assert merged == whole

    @pytest.mark.parametrize("algorithm", ["xgboost", "logistic_regression"])
    def test_a_job_stores_the_profile_of_every_feature(self, tmp_path: Path,
                                                       algorithm: str) -> None:
        """XGBoost: in pieces beside the folds; logistic regression's folds in forked
        processes: all of it after them."""
        shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
        spec = TrainSpec(model="m", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                         algorithm=algorithm, task=Task.CLASSIFICATION,
                         params={"n_estimators": "5"} if algorithm == "xgboost" else {},
                         cv_folds=3)
        staging = tmp_path / "staging"
        staging.mkdir()
        result = worker.train(spec, tmp_path, staging, lambda *a: None, cpus=2)
        data = prepare(spec, tmp_path / "spambase.csv", 10_000)
        whole = profile.feature_profiles(data.schema.numeric, data.schema.categorical, data.x)
        assert list(result["profile"]["features"]) == list(whole)
        assert result["profile"]["features"] == whole
        assert result["profile"]["rows"] == len(data.x) == np.asarray(data.x).shape[0]
