"""Hyperparameter strings from the request, turned into Python values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from modeld_server.errors import InvalidArgument, clip, quoted

_PY_LITERALS: dict[str, Any] = {"None": None, "True": True, "False": False}

MAX_DEPTH = 32
"""Deepest nesting of lists and objects a value may have. No estimator needs more than
two levels (interaction_constraints); thousands overflow the JSON parser's recursion, and
hundreds the deep copies estimators make of their params."""

# check_params (estimators.py) makes XGBoost check its values by fitting it on four rows, in
# the RPC thread. These params make that fit take time (and threads) in proportion to their
# value, so the check sees them capped; the job trains with the values as requested.
_CHECK_CAPS: dict[str, dict[str, int]] = {
    "xgboost": {"n_estimators": 2, "num_parallel_tree": 2, "max_depth": 6, "max_leaves": 8,
                "max_bin": 16, "max_cat_to_onehot": 4, "max_cat_threshold": 4, "n_jobs": 1},
}
_INT32_MAX = 2**31 - 1
# One thread for the check when the request leaves the thread count to the library (all cores).
_CHECK_DEFAULTS: dict[str, dict[str, str]] = {"xgboost": {"n_jobs": "1"}}


def parse_param(raw: str, name: str = "") -> Any:
    """A JSON literal when `raw` is one ("6" -> 6, "0.1" -> 0.1, "true" -> True), else the string.

    Python spellings None/True/False are accepted too, since users copy them from docs.

    Args:
        raw: the value as the request spelled it.
        name: the parameter's name, for the error message.

    Raises:
        InvalidArgument: a JSON value nested deeper than MAX_DEPTH.
    """
    if raw in _PY_LITERALS:
        return _PY_LITERALS[raw]
    try:
        value = json.loads(raw)
    except RecursionError:  # the C parser gives up near Python's recursion limit
        raise _too_deep(name) from None
    except ValueError:
        return raw
    if _depth(value) > MAX_DEPTH:
        raise _too_deep(name)
    return value


def parse_params(params: Mapping[str, str]) -> dict[str, Any]:
    """Every value of a params map parsed with parse_param.

    Raises:
        InvalidArgument: naming the first parameter whose value is nested too deeply.
    """
    return {name: parse_param(value, name) for name, value in params.items()}


def bounded_for_check(algorithm: str, params: Mapping[str, str]) -> dict[str, str]:
    """`params` for the synchronous check at Train: values that make its fit slow are capped.

    Only integers between a cap and XGBoost's 32-bit limit change: anything else (a
    negative depth, a float tree count, a string, 2**40, which XGBoost's parser refuses at
    once) reaches the check as sent, so it is refused with the value the user wrote.

    Args:
        algorithm: the algorithm's name (only those whose check fits have caps).
        params: the request's params.

    Returns:
        A new map; the request's is untouched.
    """
    out = {**_CHECK_DEFAULTS.get(algorithm, {}), **params}
    for name, cap in _CHECK_CAPS.get(algorithm, {}).items():
        if name not in out:
            continue
        value = parse_param(out[name], name)
        if type(value) is int and cap < value <= _INT32_MAX:  # `is`: True is an int too
            out[name] = str(cap)
    return out


def _depth(value: Any) -> int:
    """Levels of lists and objects in a parsed JSON value (0 for a scalar), without recursion."""
    depth, level = 0, [value]
    while containers := [v for v in level if isinstance(v, (list, dict))]:
        depth += 1
        level = [child for c in containers
                 for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def _too_deep(name: str) -> InvalidArgument:
    where = f"params.{clip(name)}" if name else "params"
    return InvalidArgument(f"{where}: the value nests lists or objects more than "
                           f"{MAX_DEPTH} levels deep")


def class_weight_by_index(weights: Any, classes: Sequence[Any] | None) -> Any:
    """A class_weight object keyed by class label, as the job's estimator needs it.

    The job trains on class indices (labels sorted, 0..k-1) and JSON object keys are
    strings, so {"spam": 2} would never match a class: sklearn fails the fit with "The
    classes, ['spam'], are not in class". Keys are matched to labels as text ("1" names
    the class 1, or 1.0).

    Args:
        weights: the parsed class_weight; anything but a dict is returned unchanged.
        classes: the target's class labels, sorted; None checks the weights only.

    Raises:
        InvalidArgument: a weight that is not a finite number >= 0, or a key naming no class.
    """
    if isinstance(weights, list):
        raise InvalidArgument(f"params: class_weight {quoted(weights)} is a list, which only "
                              "multi-output targets take: give an object of class -> weight, "
                              "\"balanced\" or null")
    if not isinstance(weights, dict):
        return weights
    for key, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise InvalidArgument(f"params: class_weight[{quoted(key)}] must be a number >= 0, "
                                  f"got {quoted(weight)}")
    if classes is None:
        return weights
    index: dict[str, int] = {}
    for i, label in enumerate(classes):
        index[str(label)] = i
        if isinstance(label, float) and label.is_integer():
            index[str(int(label))] = i
    for key in weights:
        if key not in index:
            shown = ", ".join(clip(str(c), 40) for c in classes[:20])
            raise InvalidArgument(f"params: class_weight names {quoted(key)}, which is not a "
                                  f"class of the target (classes: {shown}"
                                  f"{' ...' if len(classes) > 20 else ''})")
    return {index[key]: float(weight) for key, weight in weights.items()}
