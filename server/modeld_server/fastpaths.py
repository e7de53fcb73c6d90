"""One switch for the fast paths that re-implement a library's internals for speed.

Each is checked by a test against the library it stands in for, and is right today; a
library upgrade could change what it imitates. With the switch off (--no-fast-paths),
the daemon takes the library's own path everywhere, so running the integration tests once
each way shows such a change as a difference rather than as a wrong answer. The paths:

- rpc/struct_rows.py: Predict's uniform numeric records decoded from their protobuf wire
  bytes by hand (off: protobuf parses every row into a Struct).
- rpc/dense_wire.py: Predict's dense rows read from their wire bytes, a known columns block
  by one comparison and the packed values by np.frombuffer (off: protobuf's parse).
- serving/xgb_walk.py: one row of a small numeric XGBoost model answered by Python
  compiled from its trees, checked bit for bit against the C call when built (off: the C
  call).
- serving/xgb_native.py and serving/loaded.py: XGBoost's C predict called directly, then
  inplace_predict on the booster (off: the scikit-learn wrapper's predict/predict_proba).
- serving/xgb_lean.py: a numeric XGBoost version loaded and predicted through libxgboost's
  C API without importing the xgboost package, scikit-learn or pandas (off: the pickled
  scikit-learn wrapper, loaded by artifacts.load).
- serving/loaded.py FoldedLinear: imputer, scaler and logistic regression folded into one
  affine map (off: the fitted pipeline's predict_proba).
- training/gate.py: pandas' row hashing (hash_pandas_object) with its column mixing
  repeated here to share column hashes (off: hash_pandas_object per column set).
- training/evaluate.py: a fold's XGBClassifier classes taken from its predict_proba, as
  its predict does for the default objectives (off: predict as well as predict_proba).
- training/validation.py: duplicate rows found by hashing number columns first, pandas
  comparing only the rows that share a hash (off: DataFrame.duplicated on every row).
- training/label_cells.py: a classification label's text cut from the bytes the
  malformed-line scan holds, when it is the first or last column (off: pandas reads the
  label column again as text).
- training/prepare.py: integer and boolean labels encoded with pandas' sorted factorize
  (off: np.unique).
- telemetry.py: labels() children remembered in a dict (off: prometheus_client's labels()).
- logging.py: the JSON timestamp formatted once a second, and the per-RPC line written
  without structlog's dispatch (rpc_line; off: TimeStamper and structlog's logger).

It is process-wide: the daemon sets it once from Settings.fast_paths before it serves, and
hands it to each training worker (a process of its own) with the job.
"""

from __future__ import annotations

_enabled = True


def enabled() -> bool:
    """Whether the fast paths are on in this process."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Turns the fast paths on or off for this process (what --fast-paths sets)."""
    global _enabled
    _enabled = on
