"""One row through Python made from the trees gives the C call's answer, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xgboost import XGBClassifier, XGBRegressor

from modeld_server import artifacts, fastpaths
from modeld_server.registry.manifest import Manifest
from modeld_server.serving import loaded as loaded_module
from modeld_server.serving import xgb_lean, xgb_walk
from modeld_server.serving.loaded import LoadedModel
from modeld_server.serving.xgb_walk import TreeWalker

F32_MAX = float(np.finfo(np.float32).max)


def walker_and_c_call(model: Any, folder: Path) -> tuple[TreeWalker, xgb_lean.LeanBooster]:
    """The model as modeld saves it, loaded lean (the C call), and its checked walker."""
    model.save_model(folder / artifacts.XGB_FILE)
    booster = xgb_lean.load(folder / artifacts.XGB_FILE, model.n_features_in_)
    assert booster is not None
    walker = xgb_walk.build(booster.save_json(), booster.predict,
                            xgb_lean._probes(model.n_features_in_))
    assert walker is not None
    return walker, booster


def one_by_one(walker: TreeWalker, x: np.ndarray) -> np.ndarray:
    return np.concatenate([walker.predict(x[i: i + 1]) for i in range(len(x))])


class TestEqualsTheCCall:
    @pytest.mark.parametrize("params", [
        {"n_estimators": 100, "max_depth": 6},
        # Pruned by gamma: deleted nodes stay in the file, with a split feature past the
        # model's (XGBoost's deleted-node marker), reached by no path.
        {"n_estimators": 30, "max_depth": 8, "tree_method": "exact", "gamma": 50.0},
        {"n_estimators": 40, "max_depth": 10, "base_score": 0.3},
        {"n_estimators": 60, "max_depth": 3, "scale_pos_weight": 3.0, "random_state": 7},
    ])
    def test_every_spambase_row_of_a_binary_classifier(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path,
            params: dict[str, Any]) -> None:
        """Each of 4601 rows (5% missing cells) alone, float64 and float32: the C call's
        float32 P(class 1), bit for bit; a base_score given by the user too (its margin
        is libm's logf, not NumPy's log: they differ in the last bit for 0.3)."""
        x, y = spam
        model = XGBClassifier(n_jobs=1, **params).fit(x, y)
        walker, booster = walker_and_c_call(model, tmp_path)
        got = one_by_one(walker, x)
        assert got.dtype == np.float32
        assert np.array_equal(got, booster.predict(x))
        assert np.array_equal(got, model.predict_proba(x)[:, 1].astype(np.float32))
        small = x[:300].astype(np.float32)
        assert np.array_equal(one_by_one(walker, small), booster.predict(small))

    def test_every_spambase_row_of_a_regressor(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, _ = spam
        target = np.nan_to_num(x[:, -1])
        model = XGBRegressor(n_estimators=80, n_jobs=1).fit(x[:, :-1], target)
        walker, booster = walker_and_c_call(model, tmp_path)
        got = one_by_one(walker, x[:, :-1])
        assert np.array_equal(got, booster.predict(x[:, :-1]))
        assert np.array_equal(got, model.predict(x[:, :-1]))

    def test_values_on_every_boundary_and_past_float32(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        """Each split's condition, its float32 predecessor, the midpoint between them and
        the doubles either side of it (where the cast's rounding decides the branch), and
        values XGBoost's cast turns into infinities: 1e300, +-inf, just past FLT_MAX."""
        x, y = spam
        model = XGBClassifier(n_estimators=30, max_depth=5, n_jobs=1).fit(x, y)
        walker, booster = walker_and_c_call(model, tmp_path)
        rows = xgb_walk.boundary_rows(walker.model, count=400)
        extremes = np.array([1e300, -1e300, np.inf, -np.inf, F32_MAX, -F32_MAX,
                             np.nextafter(F32_MAX, np.inf), 3.5e38, 5e-324, -0.0])
        rows[:, ::2] = extremes[np.arange(rows.shape[0]) % len(extremes), None]
        assert np.array_equal(one_by_one(walker, rows), booster.predict(rows))

    def test_more_rows_at_once_and_small_chunks(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Many rows in one call, and the trees compiled 40 nodes at a time: same answers."""
        monkeypatch.setattr(xgb_walk, "CHUNK_NODES", 40)
        x, y = spam
        model = XGBClassifier(n_estimators=25, n_jobs=1).fit(x, y)
        walker, booster = walker_and_c_call(model, tmp_path)
        assert np.array_equal(walker.predict(x[:500]), booster.predict(x[:500]))

    def test_trees_bigger_than_a_chunk_compile_in_pieces(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """compile() holds the GIL throughout: a tree of thousands of nodes (max_depth=12)
        must not be one compile() call (~0.5 s for 32k nodes), but pieces of about
        CHUNK_NODES nodes calling each other, with the same answers."""
        monkeypatch.setattr(xgb_walk, "CHUNK_NODES", 20)
        sizes: list[int] = []

        def counting(source: str, *args: Any) -> Any:
            sizes.append(sum(line.lstrip().startswith(("if ", "t")) for line in
                             source.splitlines()))
            return compile(source, *args)

        monkeypatch.setattr(xgb_walk, "compile", counting, raising=False)
        x, y = spam
        model = XGBClassifier(n_estimators=3, max_depth=12, n_jobs=1).fit(x, y)
        walker, booster = walker_and_c_call(model, tmp_path)
        assert max(len(t.left) for t in walker.model.trees) > 5 * 20
        assert max(sizes) <= 20 + 2 * 12  # a piece, plus the calls of the pieces it leaves
        assert np.array_equal(one_by_one(walker, x), booster.predict(x))

    def test_threads_walking_at_once(self, spam: tuple[np.ndarray, np.ndarray],
                                     tmp_path: Path) -> None:
        x, y = spam
        walker, booster = walker_and_c_call(XGBClassifier(n_estimators=30, n_jobs=1).fit(x, y),
                                            tmp_path)
        expected, wrong = booster.predict(x[:800]), []

        def work(offset: int) -> None:
            wrong.extend(i for i in range(offset, 800, 8)
                         if walker.predict(x[i: i + 1])[0] != expected[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []


@settings(max_examples=400, deadline=None)
@given(condition=st.floats(width=32, allow_nan=False, allow_infinity=False),
       x=st.floats(allow_nan=False), ulps=st.integers(-3, 3))
def test_a_bound_compares_as_the_float32_cast_would(condition: float, x: float,
                                                    ulps: int) -> None:
    """For any float32 condition (but the lowest) and any double x, near the condition or
    not: `x < bound` exactly when float32(x) < condition."""
    c = np.float32(condition)
    if c == np.float32(-F32_MAX):
        return
    tree = xgb_walk.Tree([1, -1, -1], [2, -1, -1], [0, 0, 0], [float(c), 0.0, 0.0], [0, 0, 0])
    bound = xgb_walk._bounds(tree)[0]
    near = float(np.float64(c))
    for _ in range(abs(ulps)):
        near = float(np.nextafter(near, np.inf if ulps > 0 else -np.inf))
    for value in (x, near, (near + float(np.nextafter(c, np.float32(-np.inf)))) / 2):
        with np.errstate(over="ignore"):
            cast = np.float32(value)
        assert (value < bound) == bool(cast < c), (value, c, bound)


class TestNotBuilt:
    """Whatever it is not sure of gives None, and the C call stays."""

    def test_multiclass_dart_and_categorical_models(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, y = spam
        y3 = y + (np.nan_to_num(x[:, -1]) > 300)
        frame = pd.DataFrame({"a": pd.Categorical(np.where(y == 1, "p", "q")), "b": x[:, 0]})
        for model in (XGBClassifier(n_estimators=5).fit(x, y3),
                      XGBClassifier(n_estimators=5, booster="dart").fit(x, y),
                      XGBClassifier(n_estimators=5, enable_categorical=True).fit(frame, y)):
            raw = model.get_booster().save_raw("json")
            assert xgb_walk.build(bytes(raw), model.get_booster().inplace_predict, []) is None

    def test_a_model_past_the_size_limits(self, spam: tuple[np.ndarray, np.ndarray],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        x, y = spam
        model = XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1).fit(x, y)
        raw = bytes(model.get_booster().save_raw("json"))
        monkeypatch.setattr(xgb_walk, "MAX_VISITS", 20 * 4 - 1)
        with pytest.raises(xgb_walk.Unsupported, match="splits a row"):
            xgb_walk.parse(raw)
        assert xgb_walk.build(raw, model.get_booster().inplace_predict, []) is None

    def test_a_model_document_too_long_is_not_parsed(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """json.loads holds the GIL (~20 ms a MB here): a big model's JSON (75 bytes a
        node; 75 MB for a million nodes, 2 s) must be refused by its length, before
        parsing, not after it by the node count. Padded with spaces, a small model's
        document past MAX_JSON_BYTES is refused unread."""
        x, y = spam
        model = XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(x, y)
        raw = bytes(model.get_booster().save_raw("json"))
        assert xgb_walk.parse(raw).trees
        assert xgb_walk.MAX_JSON_BYTES >= xgb_walk.MAX_NODES * 100
        with pytest.raises(xgb_walk.Unsupported, match="bytes of JSON"):
            xgb_walk.parse(raw + b" " * (xgb_walk.MAX_JSON_BYTES - len(raw) + 1))
        assert xgb_walk.parse(raw + b" " * (xgb_walk.MAX_JSON_BYTES - len(raw))).trees

    def test_a_walker_that_disagrees_with_the_c_call(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """A base margin one float32 step off: the probes catch it."""
        x, y = spam
        model = XGBClassifier(n_estimators=20, n_jobs=1).fit(x, y)
        raw = bytes(model.get_booster().save_raw("json"))
        right = xgb_walk.base_margins(xgb_walk.parse(raw))[0]
        monkeypatch.setattr(xgb_walk, "base_margins", lambda m: [
            float(np.nextafter(np.float32(right), np.float32(1)))])
        booster = model.get_booster()
        assert xgb_walk.build(raw, lambda r: booster.inplace_predict(r), []) is None

    @pytest.mark.parametrize("field,value", [
        ("left_children", [0] * 99),  # every node its own child: a cycle
        ("right_children", [-7] * 99),
        ("split_indices", [57] * 99),  # a feature the model does not have
        ("split_conditions", [float("nan")] * 99),
        ("default_left", []),
    ])
    def test_a_malformed_tree(self, spam: tuple[np.ndarray, np.ndarray], field: str,
                              value: list[Any]) -> None:
        """Bounded work and None, never a hang, a huge list or an exception."""
        x, y = spam
        model = XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1).fit(x, y)
        document = json.loads(bytes(model.get_booster().save_raw("json")))
        tree = document["learner"]["gradient_booster"]["model"]["trees"][1]
        size = len(tree[field])
        tree[field] = value[:size] if value else []
        raw = json.dumps(document).encode()
        assert xgb_walk.build(raw, model.get_booster().inplace_predict, []) is None

    def test_a_tree_whose_nodes_share_children(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """XGBoost loads and predicts a tree whose nodes point at the same children (a
        DAG, not a cycle); written out as nested ifs, each path is a copy: 1100 nodes
        became 51k lines, 20 such trees 29 s of compile() holding the GIL. Refused at
        once."""
        x, y = spam
        model = XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(x, y)
        document = json.loads(bytes(model.get_booster().save_raw("json")))
        tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
        size, leaf = 1100, 1099
        left, right = [-1] * size, [-1] * size
        for k in range(9):  # 0 -> (1, 1), 1 -> (2, 2), ...: 512 paths reach node 9
            left[k] = right[k] = k + 1
        for k in range(9, 59):  # each of them a chain of 50 more splits
            left[k], right[k] = k + 1, leaf
        tree.update(left_children=left, right_children=right, split_indices=[0] * size,
                    split_conditions=[0.5] * size, default_left=[0] * size,
                    split_type=[0] * size, parents=[2**31 - 1] + [0] * (size - 1),
                    base_weights=[0.0] * size, loss_changes=[0.0] * size,
                    sum_hessian=[1.0] * size)
        tree["tree_param"]["num_nodes"] = str(size)
        with pytest.raises(xgb_walk.Unsupported, match="malformed"):
            xgb_walk.parse(json.dumps(document).encode())

    def test_a_right_child_that_is_not_the_node_after_the_left(
            self, spam: tuple[np.ndarray, np.ndarray]) -> None:
        """XGBoost allocates children in pairs, and its predictor takes the node after
        the left child for a value not below the split (the stored right child only for
        a missing value). A file whose right child is another node loads and predicts;
        the probes did not see the difference (2.5 against 99.5 for x1 >= 1e30), so such a
        tree is refused."""
        from xgboost import Booster

        x, y = spam
        model = XGBRegressor(n_estimators=1, max_depth=1, n_jobs=1).fit(x, y)
        document = json.loads(bytes(model.get_booster().save_raw("json")))
        document["learner"]["learner_model_param"]["base_score"] = "[5E-1]"
        tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
        # 0: x0 < 0.5 ? 1 : 3 (stored; XGBoost takes 2), 3: x1 < 1e30 ? 4 : 5.
        tree.update(left_children=[1, -1, -1, 4, -1, -1], right_children=[3, -1, -1, 5, -1, -1],
                    split_indices=[0, 0, 0, 1, 0, 0],
                    split_conditions=[0.5, 1.0, 2.0, 1e30, 2.0, 99.0],
                    default_left=[0, 0, 0, 1, 0, 0], split_type=[0] * 6,
                    parents=[2**31 - 1, 0, 0, 0, 3, 3], base_weights=[0.0] * 6,
                    loss_changes=[0.0] * 6, sum_hessian=[1.0] * 6)
        tree["tree_param"]["num_nodes"] = "6"
        raw = json.dumps(document).encode()
        booster = Booster()
        booster.load_model(bytearray(raw))
        row = np.zeros((1, x.shape[1]))
        row[0, :2] = 1.0, 1e31
        assert booster.inplace_predict(row).tolist() == [2.5]  # the node after the left
        with pytest.raises(xgb_walk.Unsupported, match="malformed"):
            xgb_walk.parse(raw)
        assert xgb_walk.build(raw, booster.inplace_predict, xgb_lean._probes(x.shape[1])) is None

    def test_garbage_instead_of_a_model(self) -> None:
        for raw in (b"", b"\x00\xff garbage", b"{}", b'{"learner": 3}'):
            assert xgb_walk.build(raw, lambda r: r, []) is None


def manifest_for(names: list[str], sample: dict[str, float]) -> Manifest:
    return Manifest.from_json({
        "version": 1, "task": "classification", "algorithm": "xgboost",
        "classes": ["0", "1"], "format": artifacts.FORMAT_XGBOOST, "sample_row": sample,
        "schema": {"numeric": names, "categorical": [], "target": "y"}})


@pytest.fixture
def version(spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> tuple[LoadedModel, Any]:
    """A saved spambase XGBoost version loaded as the daemon loads it, and its model."""
    x, y = spam
    model = XGBClassifier(n_estimators=40, n_jobs=1).fit(x, y)
    artifacts.save(artifacts.Fitted(None, model), tmp_path)
    names = [f"c{i}" for i in range(x.shape[1])]
    manifest = manifest_for(names, dict(zip(names, np.nan_to_num(x[0]).tolist(), strict=True)))
    return LoadedModel.load("m", 1, tmp_path, manifest), model


class TestLoadedModel:
    def test_one_row_calls_switch_to_the_walker_with_the_same_answers(
            self, version: tuple[LoadedModel, Any], spam: tuple[np.ndarray, np.ndarray],
            monkeypatch: pytest.MonkeyPatch) -> None:
        """The C call answers the first WALKER_AFTER_CALLS one-row calls; the walker is
        then built in the background and answers the next ones, with the same
        probabilities and labels as the library."""
        loaded, model = version
        x, _ = spam
        built: list[str] = []
        monkeypatch.setattr(loaded_module.threading, "Thread", lambda target, **kw: type(
            "T", (), {"start": lambda self: (built.append(kw["name"]), target())})())
        answers = [loaded.predict(x[i: i + 1]) for i in range(80)]
        assert built == ["walker-m-v1"]
        assert loaded.walker_done.is_set() and loaded._walker is not None
        expected = model.predict_proba(x[:80])
        for i, answer in enumerate(answers):
            assert answer.probabilities is not None
            assert np.array_equal(answer.probabilities.astype(np.float32), expected[i: i + 1])
            assert answer.labels == [str(int(expected[i, 1] > expected[i, 0]))]

    def test_threads_calling_at_once_start_one_build(
            self, version: tuple[LoadedModel, Any], spam: tuple[np.ndarray, np.ndarray],
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Counts raced by 8 threads may be lost, never the build doubled."""
        loaded, model = version
        x, _ = spam
        real, started = threading.Thread, []

        def recording(*args: Any, **kwargs: Any) -> threading.Thread:
            started.append(kwargs.get("name"))
            return real(*args, **kwargs)

        monkeypatch.setattr(loaded_module.threading, "Thread", recording)
        expected = model.predict_proba(x[:400])[:, 1].astype(np.float32)
        wrong: list[int] = []

        def work(offset: int) -> None:
            for i in range(offset, 400, 8):
                answer = loaded.predict(x[i: i + 1]).probabilities
                assert answer is not None
                if np.float32(answer[0, 1]) != expected[i]:
                    wrong.append(i)

        threads = [real(target=work, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert loaded.walker_done.wait(60) and loaded._walker is not None
        assert started == ["walker-m-v1"] and wrong == []
        loaded.build_walker()  # claimed already: nothing more
        assert started == ["walker-m-v1"]

    def test_batches_never_count_and_a_failed_build_keeps_the_c_call(
            self, version: tuple[LoadedModel, Any], spam: tuple[np.ndarray, np.ndarray],
            monkeypatch: pytest.MonkeyPatch) -> None:
        loaded, _ = version
        x, _ = spam
        for _ in range(loaded_module.WALKER_AFTER_CALLS + 5):
            loaded.predict(x[:2])
        assert not loaded.walker_done.is_set()
        monkeypatch.setattr(xgb_walk, "build", lambda *a: 1 / 0)
        loaded.build_walker()
        assert loaded.walker_done.is_set() and loaded._walker is None
        assert loaded.predict(x[:1]).probabilities is not None

    def test_no_walker_without_the_fast_paths(
            self, spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
        x, y = spam
        artifacts.save(artifacts.Fitted(None, XGBClassifier(n_estimators=5).fit(x, y)), tmp_path)
        names = [f"c{i}" for i in range(x.shape[1])]
        fastpaths.set_enabled(False)
        try:
            loaded = LoadedModel.load("m", 1, tmp_path, manifest_for(names, {}))
            loaded.build_walker()
        finally:
            fastpaths.set_enabled(True)
        assert loaded._walker is None


WALK_AND_LIST = """
import json, sys
from pathlib import Path
import numpy as np
from modeld_server.registry.manifest import Manifest
from modeld_server.serving.loaded import LoadedModel
folder = Path(sys.argv[1])
manifest = Manifest.from_json(json.loads((folder / "manifest.json").read_text()))
loaded = LoadedModel.load("m", 1, folder, manifest)
loaded.build_walker()
assert loaded._walker is not None
loaded.predict(np.zeros((1, len(loaded.schema.numeric))))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_building_the_walker_imports_no_ml_library(
        spam: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """In a fresh interpreter: neither xgboost nor scikit-learn, pandas, SciPy or joblib."""
    x, y = spam
    artifacts.save(artifacts.Fitted(None, XGBClassifier(n_estimators=10).fit(x, y)), tmp_path)
    names = [f"c{i}" for i in range(x.shape[1])]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_for(names, {}).to_json()))
    out = subprocess.run([sys.executable, "-c", WALK_AND_LIST, str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout
    assert "xgboost_walker_ready" in out  # the log line, before the module list
    assert not {"xgboost", "sklearn", "pandas", "scipy", "joblib"} & set(
        json.loads(out.splitlines()[-1]))
