"""Hyperparameter strings from the request, turned into Python values."""

from __future__ import annotations

import json
from typing import Any

_PY_LITERALS: dict[str, Any] = {"None": None, "True": True, "False": False}


def parse_param(raw: str) -> Any:
    """A JSON literal when `raw` is one ("6" -> 6, "0.1" -> 0.1, "true" -> True), else the string.

    Python spellings None/True/False are accepted too, since users copy them from docs.
    """
    if raw in _PY_LITERALS:
        return _PY_LITERALS[raw]
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_params(params: dict[str, str]) -> dict[str, Any]:
    """Every value of a params map parsed with parse_param."""
    return {name: parse_param(value) for name, value in params.items()}
