"""Row hashes of engine=dask versions (dask_hashes.py) and how the Dask gate reads them
(dask_gate.py): the local engine's files, a champion's damaged files, rows put back in
dataset order. The cluster side is tested in tests/integration/test_train_dask_gate.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeld_server.registry import fsio
from modeld_server.registry.manifest import Manifest
from modeld_server.training import champion, dask_gate, dask_hashes, gate
from modeld_server.training.dask_engine import fold_of

ROOT = Path(__file__).resolve().parents[2]


def spambase() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "spambase.csv")


def listing(folder: Path, *names: str) -> dict[str, Any]:
    """What a manifest's artifacts say of `names` in `folder`."""
    return {n: {"size": (folder / n).stat().st_size, "sha256": fsio.sha256_file(folder / n)}
            for n in names}


class TestPartitionHashes:
    def test_partitions_hashed_apart_give_the_local_engines_files(self, tmp_path: Path
                                                                  ) -> None:
        """Three partitions hashed one by one, then saved: byte for byte the files
        gate.save_row_hashes writes from the whole frame."""
        frame = spambase()
        features = [c for c in frame.columns if c != "is_spam"]
        parts = [frame.iloc[rows].assign(__modeld_pos=rows)
                 for rows in np.array_split(np.arange(len(frame)), 3)]
        got = [dask_hashes._partition_hashes(p, features, "is_spam", [], 0, 5) for p in parts]
        seen = dask_hashes.Seen(np.concatenate([g[0] for g in got]),
                                np.concatenate([g[1] for g in got]), np.arange(len(frame)),
                                tuple(features), "is_spam")
        (tmp_path / "local").mkdir()
        (tmp_path / "dask").mkdir()
        gate.save_row_hashes(tmp_path / "local", frame, features, "is_spam")
        seen.save(tmp_path / "dask")
        for name in champion.ROW_FILES:
            assert (tmp_path / "dask" / name).read_bytes() == \
                (tmp_path / "local" / name).read_bytes()

    def test_widened_integer_columns_hash_as_the_local_engines_int64(self) -> None:
        """Dask reads a CSV's integer columns as float64; listed as integral they are
        hashed as int64, as pandas reads them locally (1.0 and 1 hash differently)."""
        local = pd.DataFrame({"n": [1, 2, 3], "x": [0.5, 1.5, 2.0], "y": [0, 1, 0]})
        widened = local.astype({"n": "float64", "y": "float64"}).assign(
            __modeld_pos=[7, 8, 9])
        features, labeled, folds = dask_hashes._partition_hashes(
            widened, ["n", "x"], "y", ["n", "y"], 3, 4)
        np.testing.assert_array_equal(features, gate.row_hashes(local, ["n", "x"]))
        np.testing.assert_array_equal(labeled, gate.row_hashes(local, ["n", "x", "y"]))
        np.testing.assert_array_equal(folds, fold_of(np.array([7, 8, 9]), 3, 4))
        plain = dask_hashes._partition_hashes(widened, ["n", "x"], "y", [], 3, 4)[0]
        assert not np.array_equal(plain, features)


class TestChampionRows:
    @pytest.fixture
    def kept(self, tmp_path: Path) -> Path:
        gate.save_row_hashes(tmp_path, pd.DataFrame({"a": [1, 2, 3], "y": [0, 1, 0]}),
                             ["a"], "y")
        return tmp_path

    def test_intact_files_are_read(self, kept: Path) -> None:
        rows, why = champion.champion_rows(kept, listing(kept, *champion.ROW_FILES))
        assert why == "" and rows is not None
        np.testing.assert_array_equal(rows[0], np.load(kept / gate.ROWS_FILE))
        np.testing.assert_array_equal(rows[1], np.load(kept / gate.LABELED_ROWS_FILE))

    def test_a_version_that_kept_none(self, kept: Path) -> None:
        """An older version (or one with no row files listed): nothing is read."""
        assert champion.champion_rows(kept, {}) == (None, "it kept no row hashes")

    def test_without_the_labeled_file_only_the_features_serve(self, kept: Path) -> None:
        rows, why = champion.champion_rows(kept, listing(kept, gate.ROWS_FILE))
        assert why == "" and rows is not None and rows[1] is None

    @pytest.mark.parametrize(("damage", "why"), [
        ("garbage", "its train_rows.npy differs from its manifest"),
        ("truncated", "its train_rows.npy differs from its manifest"),
        ("missing", "its train_rows.npy is missing"),
        ("labeled", "its train_rows_labeled.npy differs from its manifest"),
    ])
    def test_damaged_files_are_named(self, kept: Path, damage: str, why: str) -> None:
        listed = listing(kept, *champion.ROW_FILES)
        path = kept / gate.ROWS_FILE
        if damage == "garbage":
            path.write_bytes(b"x" * path.stat().st_size)
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:60])
        elif damage == "missing":
            path.unlink()
        else:
            (kept / gate.LABELED_ROWS_FILE).write_bytes(b"")
        assert champion.champion_rows(kept, listed) == (None, why)

    @pytest.mark.parametrize(("content", "why"), [
        (b"\x93NUMPY garbage", "its train_rows.npy cannot be read (ValueError)"),
        (b"", "its train_rows.npy cannot be read (EOFError)"),
    ])
    def test_unreadable_bytes_the_manifest_vouches_for(self, kept: Path, content: bytes,
                                                       why: str) -> None:
        """A manifest written for bad bytes (checksums match): still no crash."""
        (kept / gate.ROWS_FILE).write_bytes(content)
        listed = listing(kept, *champion.ROW_FILES)
        assert champion.champion_rows(kept, listed) == (None, why)

    def test_an_array_that_is_not_hashes(self, kept: Path) -> None:
        np.save(kept / gate.ROWS_FILE, np.array([0.5, 1.5, 2.5]))
        listed = listing(kept, *champion.ROW_FILES)
        assert champion.champion_rows(kept, listed) == (
            None, "its train_rows.npy holds float64 of shape (3,), not hashes")


class TestOverlap:
    def test_equals_the_local_gates_overlap(self, tmp_path: Path) -> None:
        """Champion: spambase's first 3000 rows; challenger: all, with every 7th label of
        the first 3000 flipped; the unseen mask and the relabeled share are gate.overlap's."""
        frame = spambase()
        features = [c for c in frame.columns if c != "is_spam"]
        gate.save_row_hashes(tmp_path, frame.iloc[:3000], features, "is_spam")
        changed = frame.copy()
        flip = (np.arange(len(frame)) % 7 == 0) & (np.arange(len(frame)) < 3000)
        changed.loc[flip, "is_spam"] = 1 - changed.loc[flip, "is_spam"]
        manifest = Manifest(version=1, features=tuple(features), schema={
            "numeric": features, "categorical": [], "target": "is_spam"})
        rows, _ = champion.champion_rows(tmp_path, listing(tmp_path, *champion.ROW_FILES))
        assert rows is not None
        local = gate.overlap(*rows, manifest, changed)
        alone, labeled = gate.hashes_of_rows(changed, [features, [*features, "is_spam"]])
        seen = dask_hashes.Seen(alone, labeled, np.arange(len(frame)), tuple(features),
                                "is_spam")
        found = dask_gate.overlap(seen, *rows)
        np.testing.assert_array_equal(found.unseen, local.unseen)
        assert found.relabeled == local.relabeled and found.relabeled > gate.LABEL_DRIFT


class TestDatasetOrder:
    def test_held_out_rows_fold_after_fold_go_back_to_dataset_order(self) -> None:
        """The held-out arrays come fold after fold (rows in dataset order within each);
        Seen.order puts row i of the dataset back at i."""
        folds = fold_of(np.arange(50), 11, 4)
        order = np.argsort(folds, kind="stable")
        y = np.arange(50)
        proba = np.stack([y, -y], axis=1).astype(float)
        held = dask_gate.Held(
            np.concatenate([y[folds == i] for i in range(4)]),
            np.concatenate([y[folds == i] * 10 for i in range(4)]),
            np.concatenate([proba[folds == i] for i in range(4)]))
        got_y, got_pred, got_proba = dask_gate.in_dataset_order(held, order)
        np.testing.assert_array_equal(got_y, y)
        np.testing.assert_array_equal(got_pred, y * 10)
        assert got_proba is not None
        np.testing.assert_array_equal(got_proba, proba)


class TestRefitPath:
    def refit(self, *args: Any) -> dask_gate.Held:
        raise AssertionError("not called here")

    def test_xgboost_refits_on_the_cluster(self) -> None:
        assert dask_gate._refit_path(Manifest(version=1, algorithm="xgboost"), self.refit,
                                     None) == ("", self.refit)

    def test_a_scikit_learn_recipe_refits_on_one_worker_when_the_data_fits(self) -> None:
        one = dask_gate.OneWorker(self.refit, lambda: "")
        assert dask_gate._refit_path(Manifest(version=1, algorithm="ridge"), self.refit,
                                     one) == ("", one.refit)

    def test_too_big_for_a_worker_says_why(self) -> None:
        one = dask_gate.OneWorker(self.refit, lambda: "the dataset does not fit")
        why, _ = dask_gate._refit_path(Manifest(version=1, algorithm="random_forest"),
                                       self.refit, one)
        assert why == ("its algorithm random_forest refits on one Dask worker, and the "
                       "dataset does not fit")

    def test_without_the_one_worker_refit(self) -> None:
        why, _ = dask_gate._refit_path(Manifest(version=1, algorithm="ridge"), self.refit,
                                       None)
        assert why == ("its algorithm ridge does not train distributed: the Dask gate refits "
                       "only xgboost")


class TestComparableRows:
    kept = (np.array([1, 2], dtype=np.uint64), np.array([3, 4], dtype=np.uint64))
    seen = dask_hashes.Seen(np.zeros(2, dtype=np.uint64), np.zeros(2, dtype=np.uint64),
                            np.arange(2), ("a", "b"), "y")

    def manifest(self, features: tuple[str, ...], target: str) -> Manifest:
        return Manifest(version=1, features=features, schema={
            "numeric": list(features), "categorical": [], "target": target})

    def test_the_same_features_and_label_compare(self) -> None:
        assert dask_gate._comparable_rows(self.manifest(("a", "b"), "y"), self.kept,
                                          self.seen) == (self.kept, "")

    @pytest.mark.parametrize("features", [("a",), ("b", "a"), ("a", "b", "c")])
    def test_other_features_or_their_order_do_not(self, features: tuple[str, ...]) -> None:
        """The columns' hashes are mixed in order: other columns hash other values."""
        assert dask_gate._comparable_rows(self.manifest(features, "y"), self.kept,
                                          self.seen) == (None, "its feature columns differ "
                                                               "from this job's")

    def test_another_label_keeps_the_features_only(self) -> None:
        rows, why = dask_gate._comparable_rows(self.manifest(("a", "b"), "z"), self.kept,
                                               self.seen)
        assert why == "" and rows is not None and rows[1] is None
        assert rows[0] is self.kept[0]
