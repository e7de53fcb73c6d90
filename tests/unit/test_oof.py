"""training/oof.py: a retrain's gate reuses the champion's stored out-of-fold predictions when
its folds are the challenger's, refits otherwise, and decides the same either way."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modeld_server.registry.manifest import Manifest
from modeld_server.training import gate, oof, worker
from modeld_server.training.champion import Kept, champion_rows
from modeld_server.training.estimators import get_algorithm
from modeld_server.training.evaluate import CVResult, cross_validate
from modeld_server.training.prepare import Prepared, prepare
from modeld_server.types import DatasetSpec, Task, TrainSpec

ROOT = Path(__file__).resolve().parents[2]
STORED = "champion's out-of-fold predictions from its own training, in the same folds (no refit)"
REFITTED = "champion's recipe refitted in the same folds (stored predictions not reusable: {})"


def spec(algorithm: str = "logistic_regression", seed: int = 42,
         params: dict[str, str] | None = None) -> TrainSpec:
    return TrainSpec(model="spam", dataset=DatasetSpec("spambase.csv", target="is_spam"),
                     algorithm=algorithm, task=Task.CLASSIFICATION, params=dict(params or {}),
                     cv_folds=3, seed=seed)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """Version 1: logistic regression on spambase, 3 folds, seed 42, trained by the worker."""
    root = tmp_path_factory.mktemp("oof")
    shutil.copy(ROOT / "data" / "spambase.csv", root / "spambase.csv")
    folder = root / "v1"
    folder.mkdir()
    fields = worker.train(spec(), root, folder, lambda *a: None, cpus=1)
    return folder, Manifest.from_json(fields | {"version": 1})


def challenger(folder: Path, train: TrainSpec) -> tuple[Prepared, CVResult]:
    data = prepare(train, folder.parent / "spambase.csv", 10_000_000, 0)
    template = worker._template(train, get_algorithm(train.algorithm, train.task), data)
    return data, cross_validate(train, template, data, lambda *a: None)


def without_oof(manifest: Manifest) -> Manifest:
    """The manifest of a version trained before predictions were stored."""
    return Manifest.from_json({k: v for k, v in manifest.to_json().items() if k != "oof"})


def kept(folder: Path, fields: Manifest) -> Kept | None:
    """The champion's row hashes, as the gate reads them."""
    return champion_rows(folder, fields.artifacts)[0]


def test_a_version_stores_its_predictions_as_float32_with_its_fold_key(
        champion: tuple[Path, Manifest]) -> None:
    folder, fields = champion
    assert fields.oof is not None and fields.oof["file"] == oof.OOF_FILE
    key = fields.oof["key"]
    assert (key["cv_folds"], key["seed"], key["rows"], key["task"]) == (3, 42, 4601,
                                                                          "classification")
    assert key["dataset_sha256"] == fields.dataset["sha256"]
    with np.load(folder / oof.OOF_FILE) as arrays:
        assert arrays["pred"].dtype == arrays["proba"].dtype == np.float32
        assert (arrays["pred"].shape, arrays["proba"].shape) == ((4601,), (4601, 2))


def test_stored_and_refitted_champions_give_the_identical_gate_decision(
        champion: tuple[Path, Manifest]) -> None:
    """Same folds: the stored predictions are the refit's, bit for bit, and so are the
    metrics and the decision; only the record of how differs."""
    folder, fields = champion
    train = spec(params={"C": "0.05"})
    data, cv = challenger(folder, train)
    stored = worker._compare(train, data, cv, folder, fields, kept(folder, fields), cpus=1)
    refitted = worker._compare(train, data, cv, folder, without_oof(fields),
                               kept(folder, fields), cpus=1)
    assert stored is not None and refitted is not None
    assert stored.how == STORED
    assert refitted.how == REFITTED.format("it stored no out-of-fold predictions")
    assert stored.champion == refitted.champion and stored.challenger == refitted.challenger
    decisions = [gate.decide(gate.Policy(), Task.CLASSIFICATION, 2, cv.metrics, (1, c, ""))
                 .to_json() for c in (stored, refitted)]
    for decision in decisions:
        decision.pop("how")
        decision["reasons"] = [r.replace(STORED, "").replace(
            REFITTED.format("it stored no out-of-fold predictions"), "")
            for r in decision["reasons"]]
    assert decisions[0] == decisions[1]


def test_other_folds_refit_and_say_why(champion: tuple[Path, Manifest]) -> None:
    """Another seed puts rows in other folds: the stored predictions would judge other
    splits, so the recipe is refitted and the record names what differs."""
    folder, fields = champion
    train = spec(seed=7)
    data, cv = challenger(folder, train)
    comparison = worker._compare(train, data, cv, folder, fields, kept(folder, fields), cpus=1)
    assert comparison is not None
    assert comparison.how == REFITTED.format("its folds differ: seed")


@pytest.mark.parametrize(("change", "why"), [
    ({"calibration": {"method": "sigmoid"}}, "it is calibrated"),
    ({"oof": {"file": oof.OOF_FILE, "key": {}}}, "its folds differ: dataset_sha256, "
     "selection, validation, task, cv_folds, seed, rows, libraries"),
])
def test_what_is_not_reused(champion: tuple[Path, Manifest], change: dict[str, Any],
                            why: str) -> None:
    folder, fields = champion
    key = oof.fold_key(spec(), fields.dataset["sha256"], 4601, worker._library_versions())
    found, reason = oof.reusable(folder, Manifest.from_json(fields.to_json() | change), key)
    assert (found, reason) == (None, why)
