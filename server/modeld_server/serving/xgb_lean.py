"""XGBoost versions served through libxgboost's C API alone, without importing `xgboost`.

`import xgboost` imports scikit-learn (xgboost.compat subclasses its estimators), and
scikit-learn imports pandas and SciPy: most of a serve-only daemon's start-up and a large
part of its memory (bench/README.md), for models whose prediction is one C call. A version
saved in XGBoost's own format (model.ubj) with numeric features only needs none of them: its
preprocessor is a float cast that Predict already skips (LoadedModel), so neither the
preprocessor's pickle nor the estimator's Python wrapper is loaded.

This module finds libxgboost in the installed package's folder without running the
package, loads the model file with `XGBoosterLoadModel`, and predicts with
`XGBoosterPredictFromDense`: the call, config and array interface `Booster.inplace_predict`
uses (shared with xgb_native.py), with one proxy DMatrix per thread. A call of up to
HOLD_GIL_ROWS rows keeps the GIL (the function comes from a `ctypes.PyDLL` of the same
library): for one row the call takes ~50 us, and releasing the GIL around it costs two
hand-offs between gRPC's threads, under 16 callers more than the call itself (bench/README.md,
serve.py). Bigger calls release it, so other requests run meanwhile.

What keeps it correct: the calls are XGBoost's documented C API (c_api.h); at load, probe
rows are predicted both in place and through a DMatrix (`XGBoosterPredictFromDMatrix`, the
path of `Booster.predict`), and any difference, failure, unknown objective or feature count
other than the schema's makes `load` return None: the caller then loads through the xgboost
package as before. Tests compare its answers with the library's, bit for bit.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)

# The config inplace_predict builds (make_jcargs) for predict_type="value",
# iteration_range=(0, 0) (all trees), missing=NaN, strict_shape=False.
_CONFIG = json.dumps({"type": 0, "training": False, "iteration_begin": 0, "iteration_end": 0,
                      "missing": float("nan"), "strict_shape": False, "cache_id": 0}).encode()
# numpy's __array_interface__ for a C-contiguous 2-D array ("strides": null).
_INTERFACE = '{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "%s", ' \
             '"version": 3}'
_TYPESTR = {np.dtype(np.float64): "<f8", np.dtype(np.float32): "<f4"}
OBJECTIVES = ("binary:logistic", "multi:softprob", "reg:squarederror")
"""Objectives whose prediction LoadedModel reads as probabilities or values."""
_LIBRARY = {"linux": "libxgboost.so", "darwin": "libxgboost.dylib"}
_DMATRIX_CONFIG = json.dumps({"type": 0, "training": False, "iteration_begin": 0,
                              "iteration_end": 0, "strict_shape": False}).encode()
_DENSE_CONFIG = json.dumps({"missing": float("nan"), "nthread": 1}).encode()
HOLD_GIL_ROWS = 16
"""Calls of at most this many rows keep the GIL through the C call (see above)."""
_lock = threading.RLock()
_lib: ctypes.CDLL | None = None
_held: Any = None
"""XGBoosterPredictFromDense from a PyDLL of the same library: called with the GIL held."""


class LeanError(RuntimeError):
    """A C call failed; the message is XGBGetLastError's."""


def library_path() -> Path | None:
    """libxgboost inside the installed xgboost package, found without importing it."""
    name = next((v for k, v in _LIBRARY.items() if sys.platform.startswith(k)), None)
    spec = importlib.util.find_spec("xgboost")  # a top-level spec runs nothing
    if name is None or spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        path = Path(folder) / "lib" / name
        if path.is_file():
            return path
    return None


def _library() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            path = library_path()
            if path is None:
                raise LeanError("libxgboost not found beside the xgboost package")
            lib = ctypes.CDLL(str(path))
            lib.XGBGetLastError.restype = ctypes.c_char_p
            global _held
            _held = ctypes.PyDLL(str(path)).XGBoosterPredictFromDense  # the same handle
            _lib = lib
        return _lib


def _check(lib: ctypes.CDLL, code: int) -> None:
    if code != 0:
        raise LeanError((lib.XGBGetLastError() or b"unknown error").decode(errors="replace"))


class _Proxy:
    """A proxy DMatrix (the C side stores the input's address in it), freed with this object."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.handle = ctypes.c_void_p()
        _check(lib, lib.XGProxyDMatrixCreate(ctypes.byref(self.handle)))

    def __del__(self) -> None:
        if self.handle:
            self._lib.XGDMatrixFree(self.handle)


class _ThreadState(threading.local):
    """One proxy DMatrix and one set of output slots per thread (see xgb_native); a thread's
    are dropped, and its proxy freed, when it ends."""

    def __init__(self) -> None:
        self.proxy = _Proxy(_library())
        self.shape = ctypes.POINTER(ctypes.c_uint64)()
        self.dims = ctypes.c_uint64()
        self.out = ctypes.POINTER(ctypes.c_float)()
        self.args = (self.proxy.handle, ctypes.byref(self.shape), ctypes.byref(self.dims),
                     ctypes.byref(self.out))


_threads: _ThreadState | None = None
"""Created at the first prediction; threading.local runs __init__ again in each thread."""


def _state() -> _ThreadState:
    global _threads
    with _lock:
        if _threads is None:
            _threads = _ThreadState()
        return _threads


class LeanBooster:
    """A loaded model.ubj with its predict call; thread-safe, like inplace prediction."""

    def __init__(self, path: Path) -> None:
        self._lib = lib = _library()
        self._released = lib.XGBoosterPredictFromDense
        self._held = _held
        self._handle = ctypes.c_void_p()
        _check(lib, lib.XGBoosterCreate(None, ctypes.c_uint64(0), ctypes.byref(self._handle)))
        _check(lib, lib.XGBoosterLoadModel(self._handle, str(path).encode()))
        # One thread per call, as LoadedModel sets on the library's booster.
        _check(lib, lib.XGBoosterSetParam(self._handle, b"nthread", b"1"))
        features = ctypes.c_uint64()
        _check(lib, lib.XGBoosterGetNumFeature(self._handle, ctypes.byref(features)))
        self.num_features = features.value
        length, text = ctypes.c_uint64(), ctypes.c_char_p()
        _check(lib, lib.XGBoosterSaveJsonConfig(self._handle, ctypes.byref(length),
                                                ctypes.byref(text)))
        config = json.loads(ctypes.string_at(text, length.value))
        self.objective: str = config["learner"]["objective"]["name"]

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.XGBoosterFree(handle)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 predictions shaped as `inplace_predict` returns them, (n,) or (n, k)."""
        if x.dtype not in _TYPESTR or x.ndim != 2 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64)
        if not x.shape[0]:
            raise ValueError("no rows to predict")
        interface = (_INTERFACE % (x.ctypes.data, x.shape[0], x.shape[1],
                                   _TYPESTR[x.dtype])).encode()
        state = _threads if _threads is not None else _state()
        call = self._held if x.shape[0] <= HOLD_GIL_ROWS else self._released
        code = call(self._handle, interface, _CONFIG, *state.args)
        if code:
            _check(self._lib, code)
        return _copy_out(state.shape, state.dims, state.out)

    def save_json(self) -> bytes:
        """The model in XGBoost's JSON format (`Booster.save_raw("json")`)."""
        length, data = ctypes.c_uint64(), ctypes.POINTER(ctypes.c_char)()
        _check(self._lib, self._lib.XGBoosterSaveModelToBuffer(
            self._handle, b'{"format": "json"}', ctypes.byref(length), ctypes.byref(data)))
        return ctypes.string_at(data, length.value)

    def predict_dmatrix(self, x: np.ndarray) -> np.ndarray:
        """The same rows through a DMatrix (Booster.predict's path), for the load-time probe."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        interface = (_INTERFACE % (x.ctypes.data, x.shape[0], x.shape[1], "<f8")).encode()
        matrix = ctypes.c_void_p()
        _check(self._lib, self._lib.XGDMatrixCreateFromDense(interface, _DENSE_CONFIG,
                                                             ctypes.byref(matrix)))
        try:
            shape, dims = ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64()
            out = ctypes.POINTER(ctypes.c_float)()
            _check(self._lib, self._lib.XGBoosterPredictFromDMatrix(
                self._handle, matrix, _DMATRIX_CONFIG, ctypes.byref(shape), ctypes.byref(dims),
                ctypes.byref(out)))
            return _copy_out(shape, dims, out)
        finally:
            self._lib.XGDMatrixFree(matrix)


def _copy_out(shape: Any, dims: ctypes.c_uint64, out: Any) -> np.ndarray:
    """Copies the booster's per-thread output buffer (reused by the thread's next call)."""
    if dims.value == 1:  # (n,): binary and regression, the common case
        dimensions: tuple[int, ...] = (shape[0],)
        count = shape[0]
    else:
        dimensions = tuple(shape[i] for i in range(dims.value))
        count = 1
        for d in dimensions:
            count *= d
    return np.frombuffer(ctypes.string_at(out, 4 * count), dtype=np.float32).reshape(dimensions)


def load(path: Path, n_features: int) -> LeanBooster | None:
    """The model at `path` ready to predict without the xgboost package, or None when it
    cannot be (library not found, a C call failing, another objective or feature count,
    or probe rows answered differently in place and through a DMatrix)."""
    try:
        booster = LeanBooster(path)
        if booster.objective not in OBJECTIVES or booster.num_features != n_features:
            log.info("xgboost_lean_not_used", objective=booster.objective,
                     features=booster.num_features, schema_features=n_features)
            return None
        for probe in _probes(n_features):
            if not np.array_equal(booster.predict(probe), booster.predict_dmatrix(probe),
                                  equal_nan=True):
                log.warning("xgboost_lean_predict_disagrees", features=n_features)
                return None
    except (LeanError, OSError, ValueError, KeyError) as exc:
        log.warning("xgboost_lean_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    return booster


def _probes(n_features: int) -> list[np.ndarray]:
    """Rows that exercise both branches of splits and missing values, one and many rows.

    Spread over -3..3 by a fixed formula, not numpy.random, whose import (tens of ms) a
    daemon serving only XGBoost would otherwise pay at its first load."""
    many = 3.0 * np.sin(np.arange(16 * n_features, dtype=np.float64) * 2.399).reshape(
        16, n_features)
    many[::3, ::2] = np.nan
    return [np.zeros((1, n_features)), np.full((1, n_features), np.nan), many,
            many.astype(np.float32)]
