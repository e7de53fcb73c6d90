"""dask_validation.drop_duplicates against pandas' duplicated() (keep="first"), with a
real in-process Dask cluster: repeats within a partition, across partitions, and from the
last partition back to the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modeld_server.training import dask_validation

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=":0") as running:
        yield running


def hashed(frame: pd.DataFrame, partitions: int) -> Any:
    lazy = dd.from_pandas(frame, npartitions=partitions, sort=False)
    return lazy.assign(**{dask_validation.HASH: lazy.map_partitions(
        dask_validation.row_hashes, meta=(dask_validation.HASH, "u8"))})


def kept(frame: pd.DataFrame, partitions: int, client: Any) -> pd.DataFrame:
    got = client.compute(dask_validation.drop_duplicates(hashed(frame, partitions), client),
                         sync=True)
    return plain(got.drop(columns=dask_validation.HASH))


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as objects, missing as None: dask holds text as pyarrow strings."""
    return frame.astype(object).where(frame.notna(), None)


class TestDropDuplicates:
    @pytest.mark.parametrize("partitions", [1, 2, 3, 7])
    def test_keeps_the_first_of_each_row_as_pandas(self, client: Any,
                                                   partitions: int) -> None:
        rng = np.random.default_rng(7)
        frame = pd.DataFrame({"a": rng.integers(0, 4, 60).astype(float),
                              "b": rng.choice(["x", "y"], 60),
                              "c": rng.integers(0, 3, 60)})
        frame.loc[59] = frame.loc[0]  # the last partition repeats the first one's row
        want = plain(frame[~frame.duplicated()])
        got = kept(frame, partitions, client)
        pd.testing.assert_frame_equal(got, want)

    def test_negative_zero_and_missing_values_compare_as_pandas(self, client: Any) -> None:
        frame = pd.DataFrame({"a": [0.0, 1.0, -0.0, np.nan, np.nan, 2.0],
                              "b": ["x", None, "x", "y", "y", None]})
        want = plain(frame[~frame.duplicated()])
        pd.testing.assert_frame_equal(kept(frame, 3, client), want)

    def test_no_repeats_keeps_every_row(self, client: Any) -> None:
        frame = pd.DataFrame({"a": np.arange(10.0)})
        pd.testing.assert_frame_equal(kept(frame, 4, client), plain(frame))
