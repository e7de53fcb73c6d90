"""Hostile and malformed input: every RPC answers a precise status code and the daemon lives.

Hypothesis generates requests for every RPC of the contract against one live daemon
that has a real model ("iris", two versions) to hit: names with path separators, '..',
NUL, 10k characters and unicode; int64 extremes; garbage page tokens; params with odd
names and values; Predict rows of the wrong types, empty and large. After every example:
the answer was OK or a code the contract lists for that RPC (never UNKNOWN or INTERNAL),
GetStatus still answers, and nothing appeared outside the registry and state folders.

Training is kept cheap: the daemon runs one job at a time with no queue
(max_queued_jobs=0), so a valid Train either starts at once or is RESOURCE_EXHAUSTED,
and every job a fuzzed Train starts is cancelled before the next example.

Inputs that once made the daemon answer INTERNAL or an oversized status (infinite and
overflowing Predict values, a path component over 255 bytes, a symlink loop, params nested
thousands deep, 20k-character ids echoed in messages, params that made the synchronous
check train for seconds) each have a test at the end pinning the exact code and message;
the strategies draw them too, through a client with gRPC's default limits.
"""

from __future__ import annotations

import base64
import gzip
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from tests.conftest import LiveDaemon, start_daemon, wait_job, write_datasets

CODE = grpc.StatusCode
RPC_TIMEOUT = 30.0
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the proto's documented pattern
LONG = "x" * 10_000

# The codes each RPC's comment in the proto lists besides OK.
ALLOWED: dict[str, frozenset[grpc.StatusCode]] = {
    "Train": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.PERMISSION_DENIED,
                        CODE.ALREADY_EXISTS, CODE.RESOURCE_EXHAUSTED}),
    "WatchJob": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "GetJob": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "CancelJob": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION}),
    "ListJobs": frozenset({CODE.INVALID_ARGUMENT}),
    "GetStatus": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "ListVersions": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "GetVersion": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "Rollback": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION}),
    "Predict": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION,
                          CODE.UNAVAILABLE, CODE.RESOURCE_EXHAUSTED}),
    "Reload": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "Promote": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION}),
    "GetPolicy": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "SetPolicy": frozenset({CODE.INVALID_ARGUMENT}),
    "SetAlias": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION}),
    "DeleteAlias": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.FAILED_PRECONDITION}),
    "SetSchedule": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND, CODE.PERMISSION_DENIED}),
    "GetSchedule": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "DeleteSchedule": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
    "GetDrift": frozenset({CODE.INVALID_ARGUMENT, CODE.NOT_FOUND}),
}


# ---- the live daemon ------------------------------------------------------------------------

@dataclass
class Known:
    """Facts of the running fixture that strategies draw from (read only at draw time)."""

    outside: Path = Path("/nonexistent")
    jobs: list[str] = field(default_factory=list)


KNOWN = Known()


@dataclass
class Fuzz:
    """The daemon under fuzz, and what must not change around it."""

    live: LiveDaemon
    stub: pb_grpc.ModelManagerStub
    data_files: dict[str, tuple[int, int]]
    listings: dict[Path, set[str]]

    def call(self, rpc: str, request: Message) -> tuple[grpc.StatusCode, Any]:
        """Sends one request; returns (OK, reply) or (code, None) for an allowed error code."""
        method = getattr(self.stub, rpc)
        try:
            if rpc == "WatchJob":
                reply = list(method(request, timeout=RPC_TIMEOUT))
            else:
                reply = method(request, timeout=RPC_TIMEOUT)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        else:
            event(f"{rpc} -> OK")  # --hypothesis-show-statistics shows the mix of answers
            return CODE.OK, reply
        event(f"{rpc} -> {code.name}")
        assert code in ALLOWED[rpc], f"{rpc} answered {code.name}: {details}"
        assert details, f"{rpc} answered {code.name} with no message"
        return code, None

    def settle(self, job_id: str) -> None:
        """Cancels a job a fuzzed request started, so the next example finds a free slot."""
        self.call("CancelJob", pb.CancelJobRequest(job_id=job_id))
        job = wait_job(self.stub, job_id)  # a job past the point of cancelling runs out
        assert job.state in (pb.JOB_STATE_CANCELLED, pb.JOB_STATE_FAILED,
                             pb.JOB_STATE_SUCCEEDED), job

    def check(self) -> None:
        """The daemon answers, and nothing was created outside the registry and state."""
        status = self.stub.GetStatus(pb.GetStatusRequest(), timeout=RPC_TIMEOUT)
        assert "iris" in [m.model for m in status.models]
        assert not any(KNOWN.outside.iterdir()), list(KNOWN.outside.iterdir())
        for folder, names in self.listings.items():
            assert set(os.listdir(folder)) == names, folder
        assert files_of(self.live.data_root) == self.data_files
        for entry in os.listdir(self.live.registry):
            assert MODEL_NAME.fullmatch(entry), f"registry/{entry!r} is not a model"


def files_of(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            stat = path.lstat()
            out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


def iris_request(model: str, path: str) -> pb.TrainRequest:
    return pb.TrainRequest(model=model, algorithm="logistic_regression", cv_folds=2,
                           dataset=pb.Dataset(path=path, target="species"))


def submit(stub: pb_grpc.ModelManagerStub, request: pb.TrainRequest,
           timeout: float = RPC_TIMEOUT) -> pb.Job:
    """Train, retried while the single slot is busy (it frees just after a job ends: the
    previous test's job may have ended a moment ago); `timeout` is each attempt's."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return stub.Train(request, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() != CODE.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def write_malformed(data: Path) -> None:
    """Malformed datasets next to the good ones (the fuzzed Train requests pick them too)."""
    (data / "ragged.csv").write_text("a,b,species\n1,2,x\n3,4,y\n5,6,7,8,z\n1,2,x\n")
    (data / "binary.csv").write_bytes(bytes(range(256)) * 40)
    (data / "empty.csv").write_bytes(b"")
    (data / "header_only.csv").write_text("a,b,species\n")
    (data / "open_quote.csv").write_text('a,b,species\n1,"2,x\n3,4,y\n')
    iris = pd.read_csv(data / "iris.csv")
    iris.to_parquet(data / "iris.parquet")
    whole = (data / "iris.parquet").read_bytes()
    (data / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    zipped = gzip.compress((data / "iris.csv").read_bytes())
    (data / "truncated.csv.gz").write_bytes(zipped[: len(zipped) // 2])
    (data / "sub").mkdir()
    (data / "sub" / "iris.csv").write_bytes((data / "iris.csv").read_bytes())


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """One daemon with model iris (v1, v2), one training slot and no queue."""
    top = tmp_path_factory.mktemp("fuzz")
    base = top / "daemon"
    write_datasets(base / "data")
    write_malformed(base / "data")
    KNOWN.outside = base / "outside"
    KNOWN.outside.mkdir()
    live = start_daemon(base, max_concurrent_jobs=1, max_queued_jobs=0, max_predict_rows=1000)
    try:
        for _ in range(2):
            job = wait_job(live.stub, submit(live.stub, iris_request("iris", "iris.csv")).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            KNOWN.jobs.append(job.id)
        listings = {folder: set(os.listdir(folder))
                    for folder in (base, top, tmp_path_factory.getbasetemp())}
        # The daemon's own default channel: a status message over a default client's
        # 8 KiB metadata limit would reach it as RESOURCE_EXHAUSTED, not the server's code.
        yield Fuzz(live, live.stub, files_of(base / "data"), listings)
    finally:
        live.stop()


# ---- strategies -----------------------------------------------------------------------------

UTF8 = st.characters(codec="utf-8")
INT64 = st.one_of(
    st.sampled_from([0, 1, 2, 3, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**32, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
INT32 = st.one_of(st.sampled_from([0, 1, 2, 5, 20, 21, -1, 2**31 - 1, -(2**31)]),
                  st.integers(-(2**31), 2**31 - 1))
DOUBLES = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]))


def mostly(valid: st.SearchStrategy[Any],
           hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` three times in four, so the request's other fields get their turn."""
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda ok: valid if ok else hostile)


def _escapes() -> st.SearchStrategy[str]:
    """Absolute paths into the sentinel folder, which must stay empty."""
    return st.sampled_from([str(KNOWN.outside), str(KNOWN.outside / "evil"),
                            str(KNOWN.outside / "evil.csv")])


TRICKY = [
    "", ".", "..", "...", "../", "./", "/", "//", "\\", "a/b", "a\\b", "../x", "../../x",
    "../outside", "../outside/evil", "../../daemon/outside/evil", "x/../y", "iris/../iris",
    "iris/", "./iris", "/etc/passwd", "~", "~root", "$HOME", "*", "?", "%2e%2e", "%2f",
    "\x00", "iris\x00", "a\x00b", " iris", "iris ", "iris\n", "\t", "-x", "_x", ".x",
    ".staging", ".lock", "versions", "ACTIVE", "events.jsonl", "x" * 64, "x" * 65, LONG,
    "é", "模型", "🙂", "iris\u202e", "\uff29\uff32\uff29\uff33", "\ufeffiris", "\u0000" * 3,
    "con", "NUL",
]
NAMES = st.one_of(
    st.just("iris"),
    st.sampled_from(TRICKY),
    st.text(UTF8, max_size=80),
    st.text(alphabet="./\\\x00~-_aZ9é", max_size=24),
    st.deferred(_escapes),
)
JOB_IDS = st.one_of(
    st.deferred(lambda: st.sampled_from(KNOWN.jobs)),
    st.sampled_from(["", "j", "j" + "0" * 20, "../state/jobs/x", "jobs/../x.json", *TRICKY]),
    st.text(UTF8, max_size=64),
)
TEXT = st.one_of(st.sampled_from(TRICKY), st.text(UTF8, max_size=40))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


PAGE_TOKENS = st.one_of(
    st.just(""),
    st.sampled_from(["=", "====", "v1:1", "djE6", LONG, "\x00"]),
    INT64.map(lambda n: _b64(f"v1:{n}".encode())),
    st.integers(0, 10**4000).map(lambda n: _b64(f"v1:{n}".encode())),
    st.integers(4000, 5000).map(lambda digits: _b64(b"v1:" + b"9" * digits)),
    st.text(UTF8, max_size=8).map(lambda s: _b64(f"v1:{s}".encode())),
    st.binary(max_size=48).map(_b64),
    st.deferred(lambda: st.sampled_from(KNOWN.jobs)),
    st.text(UTF8, max_size=60),
)


# -- Train

DATASET_PATHS = st.one_of(
    st.sampled_from([
        "iris.csv", "iris.parquet", "anomalies.csv", "diabetes.csv", "mixed.csv", "sub/iris.csv",
        "ragged.csv", "binary.csv", "empty.csv", "header_only.csv", "open_quote.csv",
        "truncated.parquet", "truncated.csv.gz", "./iris.csv", "sub/../iris.csv", "sub",
        "iris.csv/", "iris.csv\x00", "IRIS.CSV", "iris.csv ", "data/iris.csv", "~/iris.csv",
        "iris.csv.gz", "*.csv", "../registry/iris/ACTIVE", "../state", "../data/iris.csv",
        "../outside/evil.csv", "/etc/passwd", "/dev/zero", "/proc/self/environ",
        "../../../../../../../../etc/passwd", "", ".", "..", "/", "a" * 251 + ".csv",
        "a" * 300 + ".csv", "sub/" + "é" * 200 + ".csv", "a/" * 3000 + "x.csv", LONG,
    ]),
    st.text(UTF8, max_size=60),
    st.text(UTF8, min_size=200, max_size=400),
    st.text(alphabet="./\\\x00-_ai", max_size=30),
    st.deferred(_escapes),
)
TARGETS = st.one_of(st.sampled_from(["species", "is_outlier", "target", "label", "a", ""]),
                    st.sampled_from(FEATURES), TEXT)
ALGORITHMS = st.one_of(
    st.sampled_from(["logistic_regression", "random_forest", "xgboost", "ridge",
                     "hist_gradient_boosting", "isolation_forest"]),
    st.sampled_from(["", "XGBOOST", "xgboost ", "sklearn.svm.SVC", "__import__('os')"]),
    TEXT,
)
# Parameter names of the six estimators, with XGBoost's that size its check fit.
PARAM_NAMES = st.one_of(
    st.sampled_from([
        "n_estimators", "max_depth", "learning_rate", "C", "max_iter", "alpha", "criterion",
        "min_samples_leaf", "min_samples_split", "random_state", "n_jobs", "class_weight",
        "solver", "penalty", "l1_ratio", "contamination", "max_samples", "max_features",
        "subsample", "objective", "tree_method", "booster", "verbosity", "missing",
        "max_leaves", "l2_regularization", "early_stopping", "warm_start", "tol",
        "fit_intercept", "bootstrap", "oob_score", "verbose", "reg_lambda", "gamma",
        "enable_categorical", "multi_strategy", "device", "callbacks", "eval_metric",
        "feature_types", "interaction_constraints", "monotone_constraints", "base_score",
        "importance_type", "grow_policy", "scale_pos_weight", "max_leaf_nodes",
        "num_parallel_tree", "max_bin", "max_cat_to_onehot", "max_cat_threshold",
    ]),
    st.sampled_from(["", "x__y", "estimator__C", "__class__", "__init__", "n_estimators "]),
    TEXT,
)
PARAM_VALUES = st.one_of(
    st.sampled_from([
        "", "0", "-1", "1", "2", "0.5", "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
        "null", "None", "true", "True", "false", "[]", "{}", "[1, 2]", '{"a": 1}', '"gini"',
        "gini", "entropy", "auto", "sqrt", "balanced", "hist", "exact", "cuda", "binary:hinge",
        str(2**63), str(-(2**63)), str(10**30), "1" * 5000, "\x00", "[[[[[[[[[[]]]]]]]]]]",
        "[[[[", LONG, "[" * 33 + "]" * 33, "[" * 5000 + "]" * 5000,
        '{"a": ' * 3000 + "1" + "}" * 3000, "10000", "100000", str(2**31 - 1),
    ]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
    TEXT,
)
PARAMS = st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=4)
STRING_LISTS = st.lists(st.one_of(st.sampled_from([*FEATURES, "species"]), TEXT), max_size=5)
ROW_FILTERS = st.lists(st.one_of(
    st.builds(pb.RowFilter, column=TARGETS,
              range=st.builds(pb.NumericRange, min=DOUBLES, max=DOUBLES)),
    st.builds(pb.RowFilter, column=TARGETS, values=st.builds(pb.ValueSet, values=STRING_LISTS)),
    st.builds(pb.RowFilter, column=TARGETS, dates=st.builds(pb.DateRange, start=TEXT, end=TEXT)),
    st.builds(pb.RowFilter, column=TARGETS),
), max_size=3)
VALIDATION = st.builds(pb.ValidationOptions, drop_duplicates=st.booleans(),
                       fail_on_missing_target=st.booleans(), min_rows=INT64,
                       max_malformed_fraction=DOUBLES)
ENUMS = st.one_of(st.sampled_from([0, 1, 2, 3, 4]), INT32)

# Each Train field as (a valid value, a hostile one). A request corrupts a few fields and
# keeps the rest valid, so validation reaches every field, not only the first bad one.
TRAIN_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "model": (st.sampled_from(["fz", "fz.2", "F-z_9"]), NAMES),
    "path": (st.sampled_from(["iris.csv", "iris.parquet", "sub/iris.csv", "./iris.csv"]),
             DATASET_PATHS),
    "target": (st.just("species"), TARGETS),
    "eval_label": (st.just(""), TARGETS),
    "features": (st.just([]), STRING_LISTS),
    "drop_columns": (st.just([]), STRING_LISTS),
    "filters": (st.just([]), ROW_FILTERS),
    "algorithm": (st.sampled_from(["logistic_regression", "random_forest", "xgboost",
                                   "hist_gradient_boosting"]), ALGORITHMS),
    "params": (st.just({}), PARAMS),
    "cv_folds": (st.sampled_from([0, 2, 20]), INT32),
    "seed": (st.sampled_from([None, 0, 2**32 - 1]), st.one_of(st.none(), INT64)),
    "request_id": (st.just(""), TEXT),
    "task": (st.sampled_from([0, 1]), ENUMS),
    "calibration": (st.just(0), ENUMS),
    "validation": (st.none(), VALIDATION),
    "no_activate": (st.booleans(), st.booleans()),
}
DATASET_FIELDS = ("path", "target", "eval_label", "features", "drop_columns", "filters")


@st.composite
def train_requests(draw: st.DrawFn) -> pb.TrainRequest:
    bad = draw(st.sets(st.sampled_from(sorted(TRAIN_FIELDS)), max_size=4), label="hostile")
    values = {name: draw(pair[name in bad], label=name) for name, pair in TRAIN_FIELDS.items()}
    request = pb.TrainRequest(
        dataset=pb.Dataset(**{name: values.pop(name) for name in DATASET_FIELDS}),
        **{name: value for name, value in values.items() if value is not None},
    )
    return request


# -- Predict

NUMBERS = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1.7e308,
                                                  -1.7e308, 1e300, 3.5e38, 5e-324]))
"""Numbers for rows: any double, NaN (a missing value) and the infinities included."""

SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(UTF8, max_size=30),
                    st.sampled_from(["1", "NaN", "inf", "", "x" * 100_000]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(UTF8, max_size=8), inner, max_size=4)),
    max_leaves=8)
KEYS = st.one_of(st.sampled_from([*FEATURES, "species", "", "x" * 1000, "\x00"]),
                 st.text(UTF8, max_size=20))
ROWS = st.one_of(
    st.fixed_dictionaries({name: VALUES for name in FEATURES}, optional={"species": VALUES}),
    st.fixed_dictionaries({name: NUMBERS for name in FEATURES}, optional={"species": TEXT}),
    st.fixed_dictionaries({name: NUMBERS for name in FEATURES[:3]}),
    st.dictionaries(KEYS, VALUES, max_size=6),
)
NUMERIC_ROWS = st.fixed_dictionaries({name: st.one_of(NUMBERS, st.none(), st.booleans())
                                      for name in FEATURES})
RECORDS = st.one_of(
    st.lists(ROWS, max_size=6),
    st.tuples(NUMERIC_ROWS, st.integers(1, 1500)).map(lambda t: [t[0]] * t[1]),
)
DENSE_COLUMNS = st.one_of(
    st.permutations(FEATURES),
    st.lists(st.sampled_from([*FEATURES, "species", "x", ""]), max_size=6),
    st.lists(TEXT, max_size=4),
)
DENSE_VALUES = st.one_of(
    st.lists(NUMBERS, max_size=40),
    st.tuples(st.lists(NUMBERS, min_size=1, max_size=8), st.integers(1, 1000))
    .map(lambda t: t[0] * t[1]),
)


@st.composite
def predict_requests(draw: st.DrawFn) -> pb.PredictRequest:
    request = pb.PredictRequest(model=draw(mostly(st.just("iris"), NAMES)),
                                version=draw(mostly(st.sampled_from([0, 1, 2]), INT64)))
    form = draw(st.sampled_from(["records", "dense", "none"]))
    if form == "records":
        request.records.SetInParent()
        for row in draw(RECORDS):
            request.records.rows.add().update(row)
    elif form == "dense":
        request.dense.columns.extend(draw(DENSE_COLUMNS))
        request.dense.values.extend(draw(DENSE_VALUES))
    return request


def rows_of(request: pb.PredictRequest) -> int:
    if request.WhichOneof("rows") == "records":
        return len(request.records.rows)
    return len(request.dense.values) // max(1, len(request.dense.columns))


# -- the other RPCs

IRIS_OR_NAME = mostly(st.just("iris"), NAMES)
ANY_OR_NAME = mostly(st.sampled_from(["", "iris"]), NAMES)
REAL_JOB_IDS = mostly(st.deferred(lambda: st.sampled_from(KNOWN.jobs)), JOB_IDS)
VERSIONS = mostly(st.sampled_from([0, 1, 2]), INT64)
ALIASES = mostly(st.sampled_from(["prod", "canary", "a" * 63]),
                 st.one_of(st.sampled_from(["a" * 64, "Prod", "1a", "-a", "a b"]), TEXT))
OPTIONAL_VERSIONS = st.one_of(st.none(), VERSIONS)


@st.composite
def schedules(draw: st.DrawFn) -> pb.SetScheduleRequest:
    """Mostly well-formed schedules (daily, or rarely: never sooner than an hour apart)."""
    model = draw(IRIS_OR_NAME)
    train = draw(mostly(st.just(iris_request(model, "iris.csv")), train_requests()))
    schedule = pb.Schedule(
        model=model, train=train,
        cron=draw(mostly(st.sampled_from(["", "0 3 * * *", "0 0 1 1 *"]), st.one_of(
            st.sampled_from(["* * * * *", "61 * * * *", "@reboot", "*/0 * * * *", "0 0 30 2 *",
                             "0 3 * * * *", "\x00"]), TEXT))),
        interval_seconds=draw(mostly(st.sampled_from([0.0, 86400.0]), DOUBLES)),
        min_new_rows=draw(mostly(st.sampled_from([0, 10]), INT64)),
        min_interval_seconds=draw(mostly(st.sampled_from([0.0, 3600.0]), DOUBLES)),
    )
    return pb.SetScheduleRequest(schedule=schedule)


SIMPLE_REQUESTS: dict[str, st.SearchStrategy[Message]] = {
    "WatchJob": st.builds(pb.WatchJobRequest, job_id=REAL_JOB_IDS),
    "GetJob": st.builds(pb.GetJobRequest, job_id=REAL_JOB_IDS),
    "CancelJob": st.builds(pb.CancelJobRequest, job_id=REAL_JOB_IDS),
    "ListJobs": st.builds(pb.ListJobsRequest, model=ANY_OR_NAME,
                          page_size=mostly(st.sampled_from([0, 1, 1000]), INT32),
                          page_token=PAGE_TOKENS),
    "GetStatus": st.builds(pb.GetStatusRequest, model=ANY_OR_NAME),
    "ListVersions": st.builds(pb.ListVersionsRequest, model=IRIS_OR_NAME,
                              page_size=mostly(st.sampled_from([0, 1, 1000]), INT32),
                              page_token=PAGE_TOKENS,
                              state=mostly(st.sampled_from([0, 1, 2]), INT32)),
    "GetVersion": st.builds(pb.GetVersionRequest, model=IRIS_OR_NAME, version=VERSIONS),
    "Rollback": st.builds(pb.RollbackRequest, model=IRIS_OR_NAME, to_version=VERSIONS,
                          reason=TEXT, expected_active_version=VERSIONS),
    "Reload": st.builds(pb.ReloadRequest, model=ANY_OR_NAME),
    "Promote": st.builds(pb.PromoteRequest, model=IRIS_OR_NAME, version=VERSIONS,
                         reason=TEXT, expected_active_version=VERSIONS),
    "GetPolicy": st.builds(pb.GetPolicyRequest, model=IRIS_OR_NAME),
    "SetPolicy": st.builds(pb.SetPolicyRequest, policy=st.builds(
        pb.Policy, model=IRIS_OR_NAME,
        primary_metric=mostly(st.sampled_from(["", "f1_macro", "accuracy"]), TEXT),
        tolerance=st.one_of(st.none(), DOUBLES), disabled=st.booleans(),
        thresholds=st.lists(st.builds(
            pb.Threshold, metric=mostly(st.sampled_from(["accuracy", "f1_macro"]), TEXT),
            op=mostly(st.sampled_from([">=", ">", "<=", "<"]),
                      st.one_of(st.sampled_from(["==", "=>", "", "!="]), TEXT)),
            value=DOUBLES), max_size=3),
        min_training_rows=mostly(st.sampled_from([0, 1, 1000]), INT64),
        drift_psi_warn=DOUBLES, drift_psi_alert=DOUBLES, drift_js_alert=DOUBLES,
        drift_share_alert=DOUBLES, monitor_sample=st.one_of(st.none(), DOUBLES))),
    "SetAlias": st.builds(pb.SetAliasRequest, model=IRIS_OR_NAME, alias=ALIASES,
                          version=VERSIONS, expected_version=OPTIONAL_VERSIONS),
    "DeleteAlias": st.builds(pb.DeleteAliasRequest, model=IRIS_OR_NAME, alias=ALIASES,
                             expected_version=OPTIONAL_VERSIONS),
    "SetSchedule": schedules(),
    "GetSchedule": st.builds(pb.GetScheduleRequest, model=IRIS_OR_NAME),
    "DeleteSchedule": st.builds(pb.DeleteScheduleRequest, model=IRIS_OR_NAME),
    "GetDrift": st.builds(pb.GetDriftRequest, model=IRIS_OR_NAME),
}

HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]


#: `make test` replays the same examples every run, so CI is red only for a change, never for
#: a draw; `make fuzz` (MODELD_FUZZ_EXPLORE=1) draws new ones and ten times as many.
EXPLORE = os.environ.get("MODELD_FUZZ_EXPLORE") == "1"


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    return settings(max_examples=examples * (10 if EXPLORE else 1), deadline=None,
                    database=None, derandomize=not EXPLORE, suppress_health_check=HEALTH)


# ---- properties -----------------------------------------------------------------------------

def test_every_rpc_of_the_contract_is_fuzzed() -> None:
    """A new RPC in the proto fails this until it gets a strategy here."""
    methods = set(pb.DESCRIPTOR.services_by_name["ModelManager"].methods_by_name)
    assert methods == set(ALLOWED) == {"Train", "Predict", *SIMPLE_REQUESTS}


@fuzz_settings(200)
@given(request=train_requests())
def test_train_answers_a_precise_code(fuzz: Fuzz, request: pb.TrainRequest) -> None:
    """Any Train is queued or refused with a listed code; a started job is cancelled."""
    code, job = fuzz.call("Train", request)
    if code == CODE.OK:
        fuzz.settle(job.id)
    fuzz.check()


@fuzz_settings(300)
@given(request=predict_requests())
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # huge rows, scaled
def test_predict_answers_a_precise_code(fuzz: Fuzz, request: pb.PredictRequest) -> None:
    """Any rows get predictions (one per row) or a listed code."""
    code, reply = fuzz.call("Predict", request)
    if code == CODE.OK:
        rows = rows_of(request)
        assert len(reply.labels) == rows
        assert len(reply.probabilities) == rows * len(reply.classes)
    fuzz.check()


@pytest.mark.parametrize("rpc", sorted(SIMPLE_REQUESTS))
@fuzz_settings(100)
@given(data=st.data())
def test_rpc_answers_a_precise_code(fuzz: Fuzz, rpc: str, data: st.DataObject) -> None:
    """Every other RPC answers OK or a code its comment in the proto lists."""
    request = data.draw(SIMPLE_REQUESTS[rpc], label="request")
    code, _ = fuzz.call(rpc, request)
    if rpc == "SetSchedule" and code == CODE.OK:
        # A fuzzed schedule must not go on training for the rest of the session.
        fuzz.call("DeleteSchedule", pb.DeleteScheduleRequest(model=request.schedule.model))
    fuzz.check()


# ---- malformed files ------------------------------------------------------------------------

def train(fuzz: Fuzz, path: str) -> pb.Job:
    """Submits iris-shaped training of model "malformed" on `path`."""
    return submit(fuzz.live.stub, iris_request("malformed", path))


class TestMalformedFiles:
    """Each malformed dataset is INVALID_ARGUMENT at Train or a FAILED job saying why."""

    @pytest.mark.parametrize(("path", "details"), [
        ("binary.csv", "dataset.path 'binary.csv' is not a readable CSV file"),
        ("empty.csv", "dataset.path 'empty.csv' is empty"),
        ("truncated.parquet", "dataset.path 'truncated.parquet' is not a readable Parquet file"),
        # Train's bounded sample (4 MiB) holds this whole file, so its end is seen at once;
        # a truncated gzip larger than the sample fails its job with the same words.
        ("truncated.csv.gz", "dataset.path 'truncated.csv.gz' is not a readable CSV file: "
                             "Compressed file ended before the end-of-stream marker was reached"),
    ])
    def test_refused_at_train(self, fuzz: Fuzz, path: str, details: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            train(fuzz, path)
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert details in err.value.details()
        fuzz.check()

    @pytest.mark.parametrize(("path", "reason"), [
        ("ragged.csv", r"\blines?\b\D{0,4}4\b"),  # the line with too many fields
        ("open_quote.csv", r"EOF inside string"),
        ("header_only.csv", r"\b0 (usable )?rows\b"),
    ])
    def test_failed_job_names_the_problem(self, fuzz: Fuzz, path: str, reason: str) -> None:
        job = wait_job(fuzz.live.stub, train(fuzz, path).id)
        assert job.state == pb.JOB_STATE_FAILED
        assert re.search(reason, job.error), job.error
        fuzz.check()

    def test_a_good_parquet_file_trains(self, fuzz: Fuzz) -> None:
        """The control: the same rows, whole, train fine."""
        job = wait_job(fuzz.live.stub, train(fuzz, "iris.parquet").id)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        fuzz.check()


# ---- inputs that once broke the daemon -----------------------------------------------------
# Each answered INTERNAL, or a status too big for a default client; the exact answer now.

def answer(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """(OK, "") or (code, details) of one call."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return CODE.OK, ""


FINITE_ONLY = "numbers must be finite (send NaN or null for a missing value)"
OVERFLOWS = ("values this large overflow inside this model (scaled, or cast to float32); "
             "keep numbers within +-3.4e+38")


@pytest.mark.parametrize(("request_", "details"), [
    (pb.PredictRequest(model="iris", dense=pb.DenseRows(columns=FEATURES,
                                                        values=[1.0] * 5 + [math.inf] * 3)),
     f"dense row 1 column 'sepal width (cm)' is inf: {FINITE_ONLY}"),
    (pb.PredictRequest(model="iris", dense=pb.DenseRows(columns=FEATURES, values=[1.7e308] * 4)),
     f"row 0 column 'sepal length (cm)' is 1.7e+308: {OVERFLOWS}"),
    (pb.PredictRequest(model="iris", records=pb.RecordRows(rows=[
        struct_pb2.Struct(fields={name: struct_pb2.Value(number_value=-math.inf)
                                  for name in FEATURES})])),
     f"rows[0].sepal length (cm) is -inf: {FINITE_ONLY}"),
], ids=["dense-inf", "dense-1.7e308", "records--inf"])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the scaler's
def test_non_finite_predict_values(fuzz: Fuzz, request_: pb.PredictRequest, details: str) -> None:
    """Infinities, and finite values that overflow once scaled, are INVALID_ARGUMENT."""
    assert answer(lambda: fuzz.stub.Predict(request_, timeout=RPC_TIMEOUT)) == (
        CODE.INVALID_ARGUMENT, details)
    fuzz.check()


def test_dense_rows_may_carry_the_target(fuzz: Fuzz) -> None:
    """The target column among dense columns is ignored, as it is in records."""
    row = pb.DenseRows(columns=["species", *FEATURES], values=[7.0, 5.1, 3.5, 1.4, 0.2])
    reply = fuzz.stub.Predict(pb.PredictRequest(model="iris", dense=row), timeout=RPC_TIMEOUT)
    assert list(reply.labels) == ["setosa"]


def test_too_long_dataset_path(fuzz: Fuzz) -> None:
    """A path component the OS refuses to look up is INVALID_ARGUMENT, the path cut short."""
    code, details = answer(lambda: fuzz.stub.Train(iris_request("x", "a" * 300 + ".csv"),
                                                   timeout=RPC_TIMEOUT))
    assert (code, details) == (CODE.INVALID_ARGUMENT, f"dataset.path {'a' * 80!r}... "
                               "(304 characters) cannot be looked up: File name too long")
    fuzz.check()


def test_symlink_loop_in_the_data_root(fuzz: Fuzz) -> None:
    """A dataset that is a symlink loop is INVALID_ARGUMENT."""
    loop = fuzz.live.data_root / "loop.csv"
    loop.symlink_to("loop.csv")
    try:
        outcome = answer(lambda: fuzz.stub.Train(iris_request("x", "loop.csv"),
                                                 timeout=RPC_TIMEOUT))
    finally:
        loop.unlink()
    assert outcome == (CODE.INVALID_ARGUMENT, "dataset.path 'loop.csv' is a symlink loop")
    fuzz.check()


def test_deeply_nested_param_value(fuzz: Fuzz) -> None:
    """A param value nested beyond the JSON parser's depth is INVALID_ARGUMENT naming it."""
    request = iris_request("x", "iris.csv")
    request.params["C"] = "[" * 5000 + "]" * 5000
    assert answer(lambda: fuzz.stub.Train(request, timeout=RPC_TIMEOUT)) == (
        CODE.INVALID_ARGUMENT,
        "params.C: the value nests lists or objects more than 32 levels deep")
    fuzz.check()


def test_long_inputs_are_not_echoed_whole(fuzz: Fuzz) -> None:
    """A default client (8 KiB metadata limit) sees NOT_FOUND for a 20k-character job id."""
    code, details = answer(lambda: fuzz.stub.GetJob(pb.GetJobRequest(job_id="j" * 20_000),
                                                    timeout=RPC_TIMEOUT))
    assert (code, details) == (CODE.NOT_FOUND, f"job {'j' * 80!r}... (20000 characters) not found")
    fuzz.check()


def test_param_validation_time_is_bounded(fuzz: Fuzz) -> None:
    """Validating params costs milliseconds whatever their values (unbounded: about 1.5 s)."""
    request = pb.TrainRequest(model="x", algorithm="xgboost",
                              dataset=pb.Dataset(path="iris.csv", target="species"),
                              params={"num_parallel_tree": "10000", "n_estimators": "1"})
    job = submit(fuzz.stub, request, timeout=0.5)  # DEADLINE_EXCEEDED if the check trains long
    assert answer(lambda: fuzz.stub.CancelJob(pb.CancelJobRequest(job_id=job.id),
                                              timeout=RPC_TIMEOUT)) == (CODE.OK, "")
    assert wait_job(fuzz.stub, job.id).state == pb.JOB_STATE_CANCELLED
    assert dict(job.request.params) == {"num_parallel_tree": "10000", "n_estimators": "1"}
    fuzz.check()
