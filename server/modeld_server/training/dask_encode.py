"""engine=dask's feature matrix: the local engine's preprocessing, applied per partition.

The local engine's preprocessor for XGBoost casts numbers to float64 and one-hot encodes
categorical columns (estimators.build_preprocessor); serving applies the same fitted
object to Predict's rows. Here it is fitted once, in the job's process, on a few
synthetic rows that hold every category of every categorical column (the categories are
gathered from the partitions: small), which learns exactly the categories a fit on all
rows would (OneHotEncoder keeps the sorted distinct values). Each partition is then
turned into the model's matrix by that fitted object on the workers, so the published
preprocessor and the matrix XGBoost trained on agree, and Predict needs nothing new.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modeld_server.features import FeatureSchema
from modeld_server.training.estimators import build_preprocessor, get_algorithm
from modeld_server.types import TrainSpec


def fitted_preprocessor(spec: TrainSpec, frame: Any, schema: FeatureSchema,
                        client: Any) -> tuple[Any, int]:
    """The local engine's preprocessor, fitted on every category of the dataset.

    Returns:
        The fitted preprocessor and the width of the matrix it makes.
    """
    from dask.delayed import delayed

    algorithm = get_algorithm(spec.algorithm, spec.task)
    n = len(schema.numeric)
    preprocess = build_preprocessor(algorithm, list(range(n)),
                                    list(range(n, len(schema.columns))))
    values: list[list[Any]] = [[] for _ in schema.categorical]
    if schema.categorical:
        parts = [delayed(_categories)(p, schema) for p in frame.to_delayed()]
        found = client.compute(parts, sync=True)
        for j in range(len(schema.categorical)):
            names = sorted(set().union(*(f[j][0] for f in found)))
            missing = any(f[j][1] for f in found)
            values[j] = [*names, *([math.nan] if missing or not names else [])]
    rows = max([1, *(len(v) for v in values)])
    matrix = np.zeros((rows, len(schema.columns)), dtype=object if values else np.float64)
    for j, column in enumerate(values):
        matrix[:, n + j] = [column[r % len(column)] for r in range(rows)]
    preprocess.fit(matrix)
    return preprocess, int(preprocess.transform(matrix[:1]).shape[1])


def _categories(part: Any, schema: FeatureSchema) -> list[tuple[set[str], bool]]:
    """One partition's categories per categorical column, and whether one is missing."""
    matrix = schema.matrix_from_frame(_plain_objects(part, schema))
    n = len(schema.numeric)
    out = []
    for j in range(len(schema.categorical)):
        column = matrix[:, n + j]
        names = {v for v in column if isinstance(v, str)}
        out.append((names, any(not isinstance(v, str) for v in column)))
    return out


def _plain_objects(part: Any, schema: FeatureSchema) -> Any:
    """Categorical columns as Python objects, missing as NaN (as pandas reads a CSV):
    dask's string columns hold pd.NA, which the schema refuses as a value."""
    if not schema.categorical:
        return part
    part = part.copy()
    for name in schema.categorical:
        column = part[name].astype(object)
        part[name] = column.where(part[name].notna(), math.nan)
    return part


def encode(part: Any, preprocess: Any, schema: FeatureSchema, names: list[str],
           carried: list[str]) -> Any:
    """One partition as the model's matrix (columns `names`), with `carried` kept."""
    import pandas as pd

    matrix = preprocess.transform(schema.matrix_from_frame(_plain_objects(part, schema)))
    out = pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=names, index=part.index)
    for name in carried:
        out[name] = part[name].to_numpy()
    return out


def meta(names: list[str], carried: dict[str, Any]) -> Any:
    """The empty frame encode returns: float64 features, then the carried columns."""
    import pandas as pd

    frame = pd.DataFrame({n: pd.Series(dtype="float64") for n in names})
    for name, dtype in carried.items():
        frame[name] = pd.Series(dtype=dtype)
    return frame
