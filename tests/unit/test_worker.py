"""training/worker.py: when the worker may write into its staging folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modeld_server.errors import FailedPrecondition
from modeld_server.registry.store import RegistryStore
from modeld_server.training import worker
from modeld_server.types import DatasetSpec, Task, TrainSpec

ROOT = Path(__file__).resolve().parents[2]


def test_before_save_runs_before_anything_is_written(tmp_path: Path) -> None:
    """The hook that joins the builder lock runs once, with the staging folder still empty."""
    shutil.copy(ROOT / "data" / "spambase.csv", tmp_path / "spambase.csv")
    spec = TrainSpec("m", DatasetSpec("spambase.csv", target="is_spam"), "logistic_regression",
                     Task.CLASSIFICATION, cv_folds=2)
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
