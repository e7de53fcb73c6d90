"""XGBoost's inplace prediction through its C API, with the per-call set-up done once.

`Booster.inplace_predict` is the right call, but it costs about 300 us for one row, of
which the trees take about 30. Per call it json.dumps a config and an array interface,
defines a class to wrap the output, and passes no proxy DMatrix, so the C side builds one
whose C++ `Context` reads cgroup files (`GetCfsCPUCount`, 1.7-3.2). This module makes the
same C call, `XGBoosterPredictFromDense`, with the config serialised once per loaded
version and one proxy DMatrix per thread: about 45 us.

What keeps it correct:
- the C function, its arguments and its config are exactly what `inplace_predict`
  passes (xgboost/core.py), so the numbers are XGBoost's own;
- XGBoost documents inplace prediction as thread-safe; the output buffer and shape live
  in the booster's per-thread storage and are copied before the next call on the thread;
  the proxy is per thread too, because the C side stores the input's address in it;
- `NativePredictor.create` predicts probe rows both ways when a version loads and
  returns None (callers keep `inplace_predict`) if they differ or the call fails, so an
  XGBoost release that changes the C side degrades to the slow path, not to wrong answers.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import structlog

# The config and array interface are shared with xgb_lean, which imports no xgboost.
from modeld_server.serving.xgb_lean import _CONFIG, _INTERFACE, _TYPESTR, _probes

log = structlog.get_logger(__name__)


class _ThreadState(threading.local):
    """One proxy DMatrix and one set of output slots per thread."""

    def __init__(self) -> None:
        from xgboost.core import _ProxyDMatrix

        self.proxy = _ProxyDMatrix()  # freed by its own __del__ when the thread ends
        self.shape = ctypes.POINTER(ctypes.c_uint64)()
        self.dims = ctypes.c_uint64()
        self.out = ctypes.POINTER(ctypes.c_float)()
        self.args = (self.proxy.handle, ctypes.byref(self.shape), ctypes.byref(self.dims),
                     ctypes.byref(self.out))


_threads = _ThreadState()


class NativePredictor:
    """`booster.inplace_predict(x, validate_features=False)` for float rows; thread-safe."""

    def __init__(self, booster: Any) -> None:
        from xgboost.core import _LIB, _check_call

        self._booster = booster  # owns the handle: keep it alive as long as we are
        self._handle = booster.handle
        self._call = _LIB.XGBoosterPredictFromDense
        self._check = _check_call

    @classmethod
    def create(cls, booster: Any, n_features: int) -> NativePredictor | None:
        """A predictor that agrees with `inplace_predict` on probe rows, or None."""
        try:
            native = cls(booster)
            for probe in _probes(n_features):
                expected = booster.inplace_predict(probe, validate_features=False)
                if not np.array_equal(native.predict(probe), expected, equal_nan=True):
                    log.warning("xgboost_native_predict_disagrees", features=n_features)
                    return None
        except Exception as exc:  # an XGBoost whose C side differs: keep the library path
            log.warning("xgboost_native_predict_unavailable", error=f"{type(exc).__name__}: {exc}")
            return None
        return native

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 predictions shaped as `inplace_predict` returns them, (n,) or (n, k);
        read-only."""
        typestr = _TYPESTR.get(x.dtype)
        if typestr is None or x.ndim != 2 or not x.flags.c_contiguous or not x.shape[0]:
            return np.asarray(self._booster.inplace_predict(x, validate_features=False))
        interface = (_INTERFACE % (x.ctypes.data, x.shape[0], x.shape[1], typestr)).encode()
        state = _threads
        proxy, shape_ref, dims_ref, out_ref = state.args
        self._check(self._call(self._handle, interface, _CONFIG, proxy, shape_ref, dims_ref,
                               out_ref))
        shape = tuple(state.shape[i] for i in range(state.dims.value))
        # Copied now (string_at copies): the buffer is the booster's per-thread storage,
        # reused by the next call on this thread.
        size = 4 * int(np.prod(shape))
        return np.frombuffer(ctypes.string_at(state.out, size), dtype=np.float32).reshape(shape)
