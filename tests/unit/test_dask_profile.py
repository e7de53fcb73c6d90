"""training/dask_profile.py and dask_gate.py's fingerprint, on an in-process Dask client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeld_server.features import FeatureSchema
from modeld_server.monitoring import profile
from modeld_server.training import dask_gate, dask_profile, oof
from modeld_server.types import DatasetSpec, Task, TrainSpec

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=":0") as running:
        yield running


def untidy(rows: int = 3000) -> pd.DataFrame:
    """Zeros, missing values and a text column with ties among its categories."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=rows)
    a[rng.random(rows) < 0.3] = 0.0
    a[rng.random(rows) < 0.1] = np.nan
    colour = rng.choice(np.array(["red", "blue", "green", None], dtype=object), size=rows)
    return pd.DataFrame({"a": a, "b": rng.integers(0, 5, rows).astype(float),
                         "colour": colour})


def schema_of(frame: pd.DataFrame) -> FeatureSchema:
    return FeatureSchema.infer(frame, ["a", "b", "colour"], "")


class TestFeatureProfiles:
    def test_equal_to_the_local_profile_when_the_sample_is_every_row(self, client: Any) -> None:
        """Edges, counts and shares equal the local engine's on the same rows, whatever
        the partitioning; summaries to rounding (merged moments)."""
        frame = untidy()
        schema = schema_of(frame)
        matrix = schema.matrix_from_frame(frame)
        local = profile.feature_profiles(schema.numeric, schema.categorical, matrix)
        for parts in (1, 4):
            made = dask_profile.feature_profiles(dd.from_pandas(frame, npartitions=parts),
                                                 schema, len(frame), 0, client)
            assert sorted(made) == sorted(local)
            for name, expected in local.items():
                got = made[name]
                exact = {k: v for k, v in expected.items()
                         if k not in ("mean", "std", "min", "max")}
                assert {k: got[k] for k in exact} == exact
                for key in ("mean", "std", "min", "max"):
                    if key in expected:
                        assert got[key] == pytest.approx(expected[key], rel=1e-12)

    def test_a_bounded_sample_sets_the_edges_and_the_counts_stay_exact(
            self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """With a 500-row sample: missing and zero counts and the total are exact."""
        monkeypatch.setattr(dask_profile, "SAMPLE_ROWS", 500)
        frame = untidy()
        schema = schema_of(frame)
        made = dask_profile.feature_profiles(dd.from_pandas(frame, npartitions=3), schema,
                                             len(frame), 0, client)["a"]
        assert sum(made["counts"]) == 3000
        assert made["counts"][0] == int(frame["a"].isna().sum())
        assert made["counts"][1] == int((frame["a"] == 0).sum())
        assert 1 <= len(made["edges"]) <= profile.QUANTILE_BINS - 1


class TestFingerprint:
    def test_same_rows_same_digest_and_one_value_changes_it(self, client: Any) -> None:
        frame = untidy().drop(columns="colour")
        first = dask_gate.fingerprint(dd.from_pandas(frame, npartitions=3), ["a", "b"], client)
        again = dask_gate.fingerprint(dd.from_pandas(frame, npartitions=3), ["a", "b"], client)
        frame.loc[7, "b"] = 99.0
        changed = dask_gate.fingerprint(dd.from_pandas(frame, npartitions=3), ["a", "b"],
                                        client)
        assert first == again != changed and len(first) == 64


class TestFoldKey:
    def test_a_dask_key_never_matches_a_local_one(self) -> None:
        """The Dask fold rule is part of the key: stored local predictions are never
        taken for Dask folds (their rows are in another order)."""
        spec = TrainSpec(model="m", dataset=DatasetSpec(path="d", target="y"),
                         algorithm="xgboost", task=Task.CLASSIFICATION, engine="dask")
        local = oof.fold_key(spec, "ab", 10, {"xgboost": "3"})
        on_dask = dask_gate.fold_key(spec, "ab", 10, {"xgboost": "3"})
        assert on_dask == local | {"folds": dask_gate.FOLD_RULE}
