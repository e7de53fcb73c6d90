"""PSI and Jensen-Shannon distance between a reference's bin counts and live ones."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4
"""The floor of a bin's share in PSI: an empty bin would make it infinite."""


def psi(reference: np.ndarray, live: np.ndarray) -> float:
    """Population stability index: sum over bins of (live - ref) * ln(live / ref), shares
    floored at EPSILON."""
    p = _shares(reference)
    q = _shares(live)
    p, q = np.maximum(p, EPSILON), np.maximum(q, EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, live: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (0 same, 1 disjoint), as
    scipy.spatial.distance.jensenshannon(p, q, base=2) computes it."""
    p, q = _shares(reference), _shares(live)
    m = (p + q) / 2
    divergence = 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return float(np.sqrt(max(divergence, 0.0)))


def _kl(p: np.ndarray, m: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts
