"""The row hashes a version stores for the quality gate: pandas' own, whatever the columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modeld_server.training import gate

ROOT = Path(__file__).resolve().parents[2]


def pandas_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


class TestRowHashes:
    def test_equal_to_hash_pandas_object_on_every_kind_of_column(self) -> None:
        """Text with gaps, floats with NaN and -0.0, ints, bools, categoricals."""
        frame = pd.DataFrame({
            "text": ["a", None, "b", "a"], "x": [1.0, np.nan, -0.0, 0.0], "n": [1, 2, 3, 1],
            "flag": [True, False, True, True], "kind": pd.Categorical(["u", "v", "u", "u"]),
        })
        for columns in (["text"], ["x", "n"], list(frame.columns), ["kind", "text", "x"]):
            np.testing.assert_array_equal(gate.row_hashes(frame, columns),
                                          pandas_hashes(frame, columns))

    def test_several_column_sets_at_once_equal_each_alone(self) -> None:
        frame = pd.read_csv(ROOT / "data" / "spambase.csv")
        features = [c for c in frame.columns if c != "is_spam"]
        alone, labeled = gate.hashes_of_rows(frame, [features, [*features, "is_spam"]])
        np.testing.assert_array_equal(alone, pandas_hashes(frame, features))
        np.testing.assert_array_equal(labeled, pandas_hashes(frame, [*features, "is_spam"]))
        assert not np.array_equal(alone, labeled)

    def test_saved_files_hold_the_unique_hashes(self, tmp_path: Path) -> None:
        frame = pd.DataFrame({"a": [1, 1, 2], "y": ["p", "p", "q"]})
        gate.save_row_hashes(tmp_path, frame, ["a"], "y")
        np.testing.assert_array_equal(np.load(tmp_path / gate.ROWS_FILE),
                                      np.unique(pandas_hashes(frame, ["a"])))
        np.testing.assert_array_equal(np.load(tmp_path / gate.LABELED_ROWS_FILE),
                                      np.unique(pandas_hashes(frame, ["a", "y"])))
        assert len(np.load(tmp_path / gate.ROWS_FILE)) == 2
