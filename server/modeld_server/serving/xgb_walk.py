"""One row of a small XGBoost model answered by Python made from its trees: XGBoost's
numbers bit for bit, without the C call.

Why: a 1-row Predict's `XGBoosterPredictFromDense` spends ~55 us on per-call set-up (a
model view built by walking every tree, a `std::regex` in its Context, allocations) that
its C API cannot skip, and leaves the caches cold for the Python after it: ~105 us of the
RPC handler's ~215 (bench/README.md). The same 100 trees of depth 6, written out as nested
`if`s and compiled once, take ~18 us for one row; the sum and the sigmoid ~5 more.

What makes it XGBoost's answer, not an approximation of it:
- Splits. XGBoost casts each input to float32 and takes the left child when the value is
  below the split's float32 condition, the default child when it is missing (NaN). The
  code compares the float64 input with a float64 bound chosen so that `x < bound` holds
  exactly when round-to-nearest-even float32(x) < condition (see `_bounds`): no cast per
  call, and values past float32's range compare as the infinities XGBoost's cast makes
  of them. `not x >= bound` sends NaN left, `x < bound` sends it right.
- Sums. The leaves are float32; XGBoost starts from the base margin and adds the trees in
  order, in float32. So does the walker (`np.cumsum` in float32 is a sequential sum).
- The sigmoid is XGBoost's `common::Sigmoid` (src/common/math.h) in float32 arithmetic,
  with libm's `expf`, the function libxgboost calls.
- Nothing is taken on trust: `build` predicts probe rows (rows at both sides of every
  split's boundary, missing values, the version's sample row) through the walker and
  through the C call, and returns None unless every answer is equal bit for bit. The
  caller then keeps the C call. Tests compare every spambase row for several models.

What it is not for: more rows (each row costs ~20 us; the C call's set-up is paid once a
call, so ROWS is 1), big models (MAX_VISITS), and everything but plain numeric gbtree
models with binary:logistic or reg:squarederror (categorical splits, dart, multi-class and
multi-target models keep the C call).

Compiling takes ~40 ms for 100 trees, and compile() holds the GIL throughout: the code is
compiled in chunks of at most CHUNK_NODES nodes (a few ms each; a bigger tree is cut into
functions of that many splits calling each other), so that other threads run between
them; and LoadedModel builds it in a background thread after a version loads, serving
through the C call until it is ready.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)

ROWS = 1
"""Calls of at most this many rows take the walker; bigger calls the C call."""
MAX_VISITS = 3000
"""A walker is made only when a row meets at most this many splits (the sum of the trees'
depths): ~25 ns each, so past this the C call's fixed ~55 us is the cheaper."""
MAX_NODES = 60_000
"""Nor for more nodes than this (compile time and code size grow with them)."""
MAX_JSON_BYTES = MAX_NODES * 128
"""Nor for a model whose JSON is longer (XGBoost writes 75-95 bytes a node): json.loads
holds the GIL throughout, ~20 ms a MB, so a bigger model is refused unparsed."""
MAX_DEPTH = 60
"""Nor for deeper trees: CPython's tokenizer refuses more than 100 nested blocks."""
CHUNK_NODES = 400
"""Nodes per compile() call, which holds the GIL throughout (~3 ms for 400; 0.5 s for a
tree of 32k nodes in one piece)."""
OBJECTIVES = ("binary:logistic", "reg:squarederror")
_F32 = np.float32
_SIGMOID_CAP = _F32(88.7)  # XGBoost's "avoid exp overflow" clamp
_SIGMOID_EPS = _F32(1e-16)  # its kEps, "avoid 0 div"


class Unsupported(ValueError):
    """The model has something the walker does not do; the caller keeps the C call."""


@dataclass(frozen=True)
class Tree:
    """One regression tree as XGBoost's JSON model stores it (node arrays by node id)."""

    left: Sequence[int]
    right: Sequence[int]
    feature: Sequence[int]
    condition: Sequence[float]  # the split's float32 condition, or a leaf's value
    default_left: Sequence[int]

    def depth(self) -> int:
        """Splits on the longest path from the root to a leaf."""
        deepest, level, nodes, reached = 0, 0, [0], 1
        while nodes:
            splits = [n for n in nodes if self.left[n] != -1]
            if not splits:
                return deepest
            level += 1
            deepest = level
            if level > MAX_DEPTH:
                raise Unsupported(f"a tree deeper than {MAX_DEPTH}")
            if any(self.right[n] != self.left[n] + 1 for n in splits):
                # XGBoost allocates children in pairs, and its predictor takes the node
                # after the left child for a value not below the split (the stored right
                # child only for a missing one): a tree written otherwise (a corrupt file)
                # would be walked one way and predicted another.
                raise Unsupported("a malformed tree")
            nodes = [c for n in splits for c in (self.left[n], self.right[n])]
            # A tree reaches each node once: more paths than nodes means shared (or
            # cyclic) children, and the nested ifs would copy a node once per path.
            reached += len(nodes)
            if reached > len(self.left) or min(nodes) < 0:
                raise Unsupported("a malformed tree")
        return deepest


@dataclass(frozen=True)
class Model:
    """What the walker needs from a model: its trees and how to finish their sum."""

    objective: str
    base_score: float
    num_feature: int
    trees: list[Tree]


def parse(model_json: bytes) -> Model:
    """The trees of XGBoost's JSON model (`save_raw("json")`).

    Raises:
        Unsupported: anything but numeric splits of a single-output gbtree with one of
            OBJECTIVES, or a model past MAX_JSON_BYTES, MAX_NODES, MAX_DEPTH or MAX_VISITS.
    """
    if len(model_json) > MAX_JSON_BYTES:
        raise Unsupported(f"{len(model_json)} bytes of JSON, more than {MAX_JSON_BYTES}")
    learner = json.loads(model_json)["learner"]
    objective = learner["objective"]["name"]
    booster = learner["gradient_booster"]
    params = learner["learner_model_param"]
    if objective not in OBJECTIVES:
        raise Unsupported(f"objective {objective}")
    if booster["name"] != "gbtree":
        raise Unsupported(f"booster {booster['name']}")
    if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) != 1:
        raise Unsupported("more than one output")
    scores = json.loads(params["base_score"]) if params["base_score"].startswith("[") \
        else [float(params["base_score"])]
    if len(scores) != 1:
        raise Unsupported("more than one base score")
    trees, nodes, visits = [], 0, 0
    for raw in booster["model"]["trees"]:
        if any(raw["split_type"]) or int(raw["tree_param"].get("size_leaf_vector", 1)) > 1:
            raise Unsupported("categorical splits or vector leaves")
        tree = Tree(raw["left_children"], raw["right_children"], raw["split_indices"],
                    np.asarray(raw["split_conditions"], dtype=np.float32).tolist(),
                    raw["default_left"])
        # Splits' features only: a node gamma pruning deleted stays as a leaf whose feature
        # is XGBoost's marker, 2**31-1.
        if not (len(tree.right) == len(tree.feature) == len(tree.condition)
                == len(tree.default_left) == len(tree.left) > 0) \
                or not all(0 <= int(f) < int(params["num_feature"])
                           for f, left in zip(tree.feature, tree.left, strict=True)
                           if left != -1) \
                or not np.isfinite(tree.condition).all():
            raise Unsupported("a malformed tree")  # or a leaf that is not a number
        nodes += len(tree.left)
        visits += tree.depth()
        if nodes > MAX_NODES or visits > MAX_VISITS:
            raise Unsupported(f"more than {MAX_NODES} nodes or {MAX_VISITS} splits a row")
        trees.append(tree)
    if not trees:
        raise Unsupported("no trees")
    return Model(objective, float(scores[0]), int(params["num_feature"]), trees)


def _bounds(tree: Tree) -> list[float]:
    """Per node, the float64 b with `x < b` exactly when float32(x) < the node's condition,
    for every float64 x (round to nearest, ties to even, as a C cast rounds); leaves get
    NaN.

    float32(x) < c means x rounds to c's predecessor p or below: x below the midpoint m of
    p and c (exact in float64), or at m when the tie goes to p, whose last bit is even.

    Raises:
        Unsupported: a split condition that is not finite or is float32's lowest value.
    """
    c = np.asarray(tree.condition, dtype=np.float32)
    p = np.nextafter(c, _F32(-np.inf))
    split = np.asarray(tree.left) != -1
    if not (np.isfinite(c[split]).all() and np.isfinite(p[split]).all()):
        raise Unsupported("a split condition that is not finite")
    m = (p.astype(np.float64) + c.astype(np.float64)) / 2
    p_even = (p.view(np.uint32) & 1) == 0
    bounds = np.where(p_even, np.nextafter(m, np.inf), m)
    return np.where(split, bounds, np.nan).tolist()  # type: ignore[no-any-return]


def _tree_source(index: int, tree: Tree, lines: list[str], pieces: list[list[str]]) -> None:
    """Appends the nested ifs that set t{index} to the tree's leaf for row x.

    A tree bigger than CHUNK_NODES is cut: past that many splits in `lines`, each subtree
    still to write becomes a function of its own, called there and appended to `pieces`
    (cut the same way), so that each is compiled in a few ms (see _compile)."""
    bounds = _bounds(tree)
    todo: list[tuple[int, list[str]]] = [(0, lines)]
    while todo:
        root, out = todo.pop()
        stack: list[tuple[int, int, str | None]] = [(root, 1, None)]
        splits = 0
        while stack:
            node, depth, before = stack.pop()
            if before is not None:
                out.append(before)
            pad = "    " * depth
            if tree.left[node] == -1:
                out.append(f"{pad}t{index} = {tree.condition[node]!r}")
                continue
            if splits >= CHUNK_NODES:
                name = f"s{index}_{int(node)}"
                out.append(f"{pad}t{index} = {name}(x)")
                todo.append((node, [f"def {name}(x):"]))
                continue
            splits += 1
            x, b = f"x[{int(tree.feature[node])}]", repr(bounds[node])
            out.append(f"{pad}if not {x} >= {b}:" if tree.default_left[node] else
                       f"{pad}if {x} < {b}:")
            # Left first: pushed last; the right branch comes after an "else:".
            stack.append((tree.right[node], depth + 1, f"{pad}else:"))
            stack.append((tree.left[node], depth + 1, None))
        if out is not lines:
            out.append(f"    return t{index}")
            pieces.append(out)


def _compile(model: Model, base_margin: float) -> Callable[[list[float]], tuple[float, ...]]:
    """walk(row) -> (base margin, leaf of tree 0, leaf of tree 1, ...), compiled in chunks
    of trees, and a big tree's pieces each on its own."""
    namespace: dict[str, Any] = {}
    chunks: list[str] = []
    start = 0
    while start < len(model.trees):
        end, nodes = start, 0
        while end < len(model.trees) and (end == start or
                                          nodes + len(model.trees[end].left) <= CHUNK_NODES):
            nodes += len(model.trees[end].left)
            end += 1
        name = f"chunk{len(chunks)}"
        lines = [f"def {name}(x):"]
        pieces: list[list[str]] = []
        for i in range(start, end):
            _tree_source(i, model.trees[i], lines, pieces)
        lines.append("    return (" + "".join(f"t{i}, " for i in range(start, end)) + ")")
        for piece in pieces:
            exec(compile("\n".join(piece), f"<xgboost tree {piece[0][4:-4]}>", "exec"),
                 namespace)
        exec(compile("\n".join(lines), f"<xgboost trees {start}-{end - 1}>", "exec"), namespace)
        chunks.append(name)
        start = end
    whole = f"def walk(x):\n    return ({base_margin!r},) + " + " + ".join(
        f"{c}(x)" for c in chunks)
    exec(compile(whole, "<xgboost trees>", "exec"), namespace)
    walk: Callable[[list[float]], tuple[float, ...]] = namespace["walk"]
    return walk


def _libm(name: str) -> Any:
    """libm's float function `name` (expf, logf) as this process resolves it, which is
    what libxgboost's calls resolve to; called with the GIL held (~50 ns).

    dlopen(NULL), not ctypes.util.find_library, which runs a subprocess to search."""
    try:
        function = getattr(ctypes.PyDLL(None), name)
    except AttributeError:
        raise Unsupported(f"{name} not found in this process") from None
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


class TreeWalker:
    """Predicts like `XGBoosterPredictFromDense` on all trees; thread-safe (no state)."""

    def __init__(self, model: Model, base_margin: float) -> None:
        self.model = model
        self.base_margin = base_margin
        self._walk = _compile(model, base_margin)
        self._expf: Any = _libm("expf") if model.objective == "binary:logistic" else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 predictions of float rows, shaped (n,) as the C call returns them."""
        walk = self._walk
        if len(x) == 1:  # the same steps on scalars, ~5 us less than on arrays
            margin = np.cumsum(np.array(walk(x[0].tolist()), dtype=np.float32))[-1]
            return np.array([margin if self._expf is None else self._sigmoid(margin)],
                            dtype=np.float32)
        leaves = np.array([walk(row) for row in x.tolist()], dtype=np.float32)
        margins = np.cumsum(leaves, axis=1, dtype=np.float32)[:, -1]
        if self._expf is None:  # reg:squarederror: the margin is the prediction
            return margins
        return np.array([self._sigmoid(m) for m in margins], dtype=np.float32)

    def _sigmoid(self, margin: np.float32) -> np.float32:
        """XGBoost's Sigmoid(float): 1.0f / (expf(min(-x, 88.7f)) + 1.0f + kEps), each
        step in float32 (NumPy's float32 scalars round as C's float arithmetic does)."""
        e = _F32(self._expf(float(min(-margin, _SIGMOID_CAP))))
        result: np.float32 = _F32(1.0) / ((e + _F32(1.0)) + _SIGMOID_EPS)
        return result


def base_margins(model: Model) -> list[float]:
    """Candidates for the base margin XGBoost adds first; `build` keeps the one whose
    predictions are XGBoost's. For binary:logistic, its ProbToMargin(base_score) is
    -logf(1.0f / p - 1.0f): libm's logf first, then NumPy's float32 log (they can differ
    in the last bit)."""
    score = _F32(model.base_score)
    if model.objective == "reg:squarederror":
        return [float(score)]
    with np.errstate(all="ignore"):
        odds = _F32(1.0) / score - _F32(1.0)
        found = [-_F32(_libm("logf")(float(odds))), -np.log(odds)]
    return list(dict.fromkeys(float(v) for v in found if np.isfinite(v)))


def boundary_rows(model: Model, count: int = 48) -> np.ndarray:
    """Rows whose values sit on, beside and between the float32 neighbours of the split
    conditions, so probes cross every kind of boundary the walker could get wrong."""
    features = np.concatenate([np.asarray(t.feature)[np.asarray(t.left) != -1]
                               for t in model.trees])
    c = np.concatenate([np.asarray(t.condition, dtype=np.float32)[np.asarray(t.left) != -1]
                        for t in model.trees])
    p = np.nextafter(c, _F32(-np.inf))
    m = (p.astype(np.float64) + c.astype(np.float64)) / 2
    near = np.stack([c.astype(np.float64), p.astype(np.float64), m,
                     np.nextafter(m, -np.inf), np.nextafter(m, np.inf)], axis=1)
    rows = np.zeros((count, model.num_feature))
    picks = np.arange(count) * 131
    for f in np.unique(features).tolist():
        if 0 <= f < model.num_feature:
            found = near[features == f].ravel()
            rows[:, f] = found[(picks + f * 7) % len(found)]
    rows[::5, ::3] = np.nan
    return rows


def build(model_json: bytes, predict: Callable[[np.ndarray], np.ndarray],
          probes: Sequence[np.ndarray]) -> TreeWalker | None:
    """A walker whose answers equal `predict`'s (the C call) on every probe row and on
    boundary_rows, bit for bit, or None (unsupported model, or any difference)."""
    try:
        model = parse(model_json)
        rows = [np.asarray(p) for p in probes if p.ndim == 2 and p.shape[1] == model.num_feature]
        rows.append(boundary_rows(model))
        for candidate in base_margins(model):
            walker = TreeWalker(model, candidate)
            if all(_agrees(walker, predict, r) for r in rows):
                return walker
        log.info("xgboost_walker_not_used", reason="predictions differ from the C call")
    except (Unsupported, KeyError, IndexError, TypeError, ValueError, OSError) as exc:
        log.info("xgboost_walker_not_used", reason=f"{type(exc).__name__}: {exc}")
    return None


def _agrees(walker: TreeWalker, predict: Callable[[np.ndarray], np.ndarray],
            rows: np.ndarray) -> bool:
    expected = np.asarray(predict(rows))
    got = np.concatenate([walker.predict(rows[i:i + 1]) for i in range(len(rows))])
    return expected.dtype == got.dtype and np.array_equal(got, expected, equal_nan=True)
