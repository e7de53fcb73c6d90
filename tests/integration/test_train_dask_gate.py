"""The quality gate of engine=dask against a real distributed.LocalCluster the test starts:
row hashes kept by Dask versions, rows the champion never saw, changed labels, and a
scikit-learn champion of a Dask XGBoost challenger.

Small on purpose (the machine is shared): 2 worker processes of one thread, spambase cut
into Parquet files; 3 folds. Every wait polls with a deadline; nothing is timed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.training import dask_engine, gate
from modeld_server.training.estimators import (
    build_estimator,
    build_preprocessor,
    get_algorithm,
)
from modeld_server.types import Task
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon, wait_job
from tests.integration.test_train_dask import one_small_worker

# A LocalCluster per module and minutes of training: `make test-dask` (CI runs it).
pytestmark = pytest.mark.dask

distributed = pytest.importorskip("distributed")

FOLDS = 3
UNSEEN = "rows the champion never saw"
REFIT = "champion's recipe refitted in the same folds (stored predictions not reusable: "


def write_parquet(folder: Path, frame: pd.DataFrame, files: int) -> None:
    """`frame`'s rows in order, cut into `files` Parquet files named in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)


def flipped() -> pd.DataFrame:
    """spambase with the label of every 10th row flipped (461 of 4601 rows)."""
    frame = pd.read_csv(SPAMBASE)
    every = np.arange(len(frame)) % 10 == 0
    frame.loc[every, "is_spam"] = 1 - frame.loc[every, "is_spam"]
    return frame


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as running:
        yield running


def data_folder(root: Path, datasets: Path) -> None:
    """spambase as spambase.csv, spam/ (4 files), first3/ (its first 3 files' rows) and
    flipped/ (4 files, every 10th label flipped)."""
    shutil.copytree(datasets, root)
    frame = pd.read_csv(SPAMBASE)
    write_parquet(root / "spam", frame, 4)
    write_parquet(root / "first3", frame.iloc[:3451], 3)  # np.array_split's first 3 of 4
    write_parquet(root / "flipped", flipped(), 4)


@pytest.fixture
def on_dask(tmp_path: Path, datasets: Path, cluster: distributed.LocalCluster
            ) -> Iterator[LiveDaemon]:
    data_folder(tmp_path / "data", datasets)
    live = start_daemon(tmp_path, dask_scheduler=cluster.scheduler_address)
    yield live
    live.stop()


def train(daemon: LiveDaemon, model: str, path: str, engine: str = "dask",
          algorithm: str = "xgboost") -> pb.Job:
    job = wait_job(daemon.stub, daemon.stub.Train(pb.TrainRequest(
        model=model, dataset=pb.Dataset(path=path, target="is_spam"), algorithm=algorithm,
        engine=engine, cv_folds=FOLDS)).id)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    return job


def version_file(daemon: LiveDaemon, model: str, version: int, name: str) -> Path:
    return daemon.registry / model / "versions" / str(version) / name


def manifest_of(daemon: LiveDaemon, model: str, version: int) -> dict[str, object]:
    manifest: dict[str, object] = json.loads(
        version_file(daemon, model, version, "manifest.json").read_text())
    return manifest


def gate_of(daemon: LiveDaemon, model: str, version: int) -> dict[str, object]:
    record: dict[str, object] = manifest_of(daemon, model, version)["gate"]  # type: ignore[assignment]
    return record


def features_hashes(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(pd.util.hash_pandas_object(frame.drop(columns="is_spam"), index=False),
                      dtype=np.uint64)


class TestRowHashesOfDaskVersions:
    @pytest.mark.parametrize("path", ["spam", "spambase.csv"])
    def test_the_files_equal_the_local_engines(self, on_dask: LiveDaemon, path: str) -> None:
        """XGBoost on Dask (hashed per partition on the workers) and logistic regression on
        Dask (hashed on the worker holding the prepared rows) keep row files byte for byte
        equal to the local engine's on the same dataset: on a CSV file too, whose integer
        columns Dask reads as float64."""
        train(on_dask, "local", path, engine="local")
        train(on_dask, "xgb", path)
        train(on_dask, "lr", path, algorithm="logistic_regression")
        for name in (gate.ROWS_FILE, gate.LABELED_ROWS_FILE):
            local = version_file(on_dask, "local", 1, name).read_bytes()
            assert version_file(on_dask, "xgb", 1, name).read_bytes() == local, name
            assert version_file(on_dask, "lr", 1, name).read_bytes() == local, name
        frame = pd.read_csv(SPAMBASE)
        kept = np.load(version_file(on_dask, "xgb", 1, gate.ROWS_FILE))
        np.testing.assert_array_equal(kept, np.unique(features_hashes(frame)))
        assert set(manifest_of(on_dask, "xgb", 1)["artifacts"]) >= {  # type: ignore[arg-type]
            gate.ROWS_FILE, gate.LABELED_ROWS_FILE}


class TestRowsTheChampionNeverSaw:
    def test_either_engine_finds_the_unseen_rows_and_scores_them_alike(
            self, on_dask: LiveDaemon) -> None:
        """A champion trained on the first 3 files, a challenger on all 4: whichever engine
        trained either, the gate compares them on the rows whose features the champion never
        saw (counted here with pandas), and the champion's score there equals the local
        gate's exactly (the same model predicting the same rows)."""
        frame = pd.read_csv(SPAMBASE)
        unseen = int((~np.isin(features_hashes(frame),
                               features_hashes(frame.iloc[:3451]))).sum())
        assert unseen > gate.MIN_UNSEEN
        for model, champion, challenger in (("local-dask", "local", "dask"),
                                            ("local-local", "local", "local"),
                                            ("dask-local", "dask", "local"),
                                            ("dask-dask", "dask", "dask")):
            train(on_dask, model, "first3", engine=champion)
            train(on_dask, model, "spam", engine=challenger)
            record = gate_of(on_dask, model, 2)
            assert record["how"] == UNSEEN and record["rows"] == unseen, model
            assert record["champion_version"] == 1
        assert gate_of(on_dask, "local-dask", 2)["champion"] == gate_of(
            on_dask, "local-local", 2)["champion"]
        assert gate_of(on_dask, "dask-dask", 2)["champion"] == gate_of(
            on_dask, "dask-local", 2)["champion"]


    def test_a_scikit_learn_challenger_on_dask_scores_the_champion_on_its_worker(
            self, on_dask: LiveDaemon) -> None:
        """Logistic regression on Dask (its rows prepared on one worker): the champion is
        scored there on the unseen rows, with the local gate's rows and champion score."""
        unseen = None
        for model, engine in (("dask", "dask"), ("local", "local")):
            train(on_dask, model, "first3", engine="local", algorithm="logistic_regression")
            train(on_dask, model, "spam", engine=engine, algorithm="logistic_regression")
            record = gate_of(on_dask, model, 2)
            assert record["how"] == UNSEEN, model
            unseen = unseen or (record["rows"], record["champion"], record["challenger"])
            assert (record["rows"], record["champion"], record["challenger"]) == unseen


class TestLabelsChanged:
    def test_the_deployed_champion_is_scored_on_all_rows_against_the_new_labels(
            self, on_dask: LiveDaemon) -> None:
        """Every 10th label flipped, the features unchanged: a Dask challenger's gate finds
        10% of the known rows relabeled and scores the deployed champion on all rows, as the
        local engine's gate does, with the same champion score."""
        for model, engine in (("dask", "dask"), ("local", "local")):
            train(on_dask, model, "spam", engine="local")
            train(on_dask, model, "flipped", engine=engine)
        record = gate_of(on_dask, "dask", 2)
        assert record["how"] == ("labels changed on 10% of the champion's rows: the deployed "
                                 "champion scored on all rows")
        assert record["rows"] == 4601
        local = gate_of(on_dask, "local", 2)
        assert (local["how"], local["rows"], local["champion"]) == (
            record["how"], record["rows"], record["champion"])


class TestScikitLearnChampionOfDaskXGBoost:
    def test_the_recipe_is_refitted_in_the_dask_folds_on_one_worker(
            self, on_dask: LiveDaemon) -> None:
        """A logistic-regression champion, an XGBoost challenger on Dask on the same rows:
        the recipe is cross-validated in the challenger's Dask folds as one task, and the
        champion's score equals that recipe cross-validated here in the same folds."""
        train(on_dask, "spam", "spam", engine="local", algorithm="logistic_regression")
        train(on_dask, "spam", "spam")
        record = gate_of(on_dask, "spam", 2)
        assert str(record["how"]).startswith(REFIT + "its folds differ: "), record["how"]
        assert record["rows"] == 4601 and record["metric"] == "f1"
        champion = manifest_of(on_dask, "spam", 1)
        assert record["champion"] == recipe_in_dask_folds(
            champion, manifest_of(on_dask, "spam", 2)["seed"])  # type: ignore[arg-type]

    def test_a_dataset_larger_than_a_worker_keeps_thresholds_only_and_says_why(
            self, tmp_path: Path, datasets: Path) -> None:
        """Workers whose memory_limit is below 3 times the dataset (memory management off,
        so the limit is only reported): the challenger is judged on thresholds only, and the
        record names the size, the copies and the limit."""
        data_folder(tmp_path / "data", datasets)
        with one_small_worker() as small:
            live = start_daemon(tmp_path, dask_scheduler=small.scheduler_address)
            try:
                train(live, "spam", "spam", engine="local", algorithm="logistic_regression")
                job = train(live, "spam", "spam")
                record = gate_of(live, "spam", 2)
            finally:
                live.stop()
        size = sum(
            pq_bytes(p) for p in sorted((tmp_path / "data" / "spam").glob("*.parquet")))
        assert job.activated
        assert record["how"] == "" and record["champion"] is None
        assert record["reasons"] == [
            "champion v1 not comparable (its algorithm logistic_regression refits on one Dask "
            f"worker, and the dataset (about {size} bytes in memory, 3 copies for a fit) does "
            "not fit the smallest worker's memory_limit=1000000 bytes); thresholds only"]


class TestDamagedChampionHashes:
    @pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
    def test_the_gate_compares_in_the_same_folds_and_says_why(
            self, on_dask: LiveDaemon, damage: str) -> None:
        """The champion's train_rows.npy overwritten, cut short or deleted: the job still
        succeeds, the gate compares on the same-data path (here: a refit, the seeds' folds
        differ) and its record says why the hashes were not used."""
        train(on_dask, "spam", "first3")
        path = version_file(on_dask, "spam", 1, gate.ROWS_FILE)
        if damage == "garbage":
            path.write_bytes(b"\x93NUMPY garbage" * 8)
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:100])
        else:
            path.unlink()
        train(on_dask, "spam", "spam")
        record = gate_of(on_dask, "spam", 2)
        why = {"garbage": "its train_rows.npy differs from its manifest",
               "truncated": "its train_rows.npy differs from its manifest",
               "missing": "its train_rows.npy is missing"}[damage]
        assert str(record["how"]).startswith(REFIT), record["how"]
        assert record["reasons"][-1] == (  # type: ignore[index]
            f"champion v1's row hashes not used ({why}): rows it never saw and changed labels "
            "not looked for")


def pq_bytes(path: Path) -> int:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def recipe_in_dask_folds(champion: dict[str, object], seed: int) -> float:
    """f1 of the champion's recipe (modeld's preprocessor and estimator, its params and
    seed) cross-validated in the Dask folds of `seed`, pooled over the held-out rows."""
    frame = pd.read_csv(SPAMBASE)
    x = frame.drop(columns="is_spam").to_numpy(dtype=np.float64)
    y = frame["is_spam"].to_numpy()
    algorithm = get_algorithm("logistic_regression", Task.CLASSIFICATION)
    folds = dask_engine.fold_of(np.arange(len(frame)), seed, FOLDS)
    ys, preds, probas = [], [], []
    for i in range(FOLDS):
        test = folds == i
        pre = build_preprocessor(algorithm, list(range(x.shape[1])), [])
        est = build_estimator(algorithm, Task.CLASSIFICATION,
                              dict(champion["params"]),  # type: ignore[call-overload]
                              int(champion["seed"]), ["0", "1"])  # type: ignore[call-overload]
        est.fit(pre.fit_transform(x[~test]), y[~test])
        preds.append(est.predict(pre.transform(x[test])))
        probas.append(np.asarray(est.predict_proba(pre.transform(x[test])),
                                 dtype=np.float32))
        ys.append(y[test])
    metrics = gate.pooled_metrics(Task.CLASSIFICATION, np.concatenate(ys),
                                  np.concatenate(preds).astype(np.float32),
                                  np.concatenate(probas), 2)
    return metrics["f1"]
