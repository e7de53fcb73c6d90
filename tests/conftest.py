"""Shared fixtures: datasets written by the tests, and live daemons on 127.0.0.1 port 0."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server import fastpaths
from modeld_server.compose import build_daemon
from modeld_server.config import Settings, load_settings
from modeld_server.daemon import Daemon

ROOT = Path(__file__).resolve().parents[1]
SPAMBASE = ROOT / "data" / "spambase.csv"


@pytest.fixture(autouse=True)
def _fast_paths_on() -> Iterator[None]:
    """Each test starts with the fast paths on: the switch is process-wide, and a daemon
    started with --no-fast-paths in one test would otherwise turn them off for the next."""
    fastpaths.set_enabled(True)
    yield
    fastpaths.set_enabled(True)


def write_datasets(folder: Path) -> None:
    """spambase (vendored) plus small datasets made here: mixed types, regression, anomalies."""
    from sklearn.datasets import load_diabetes, load_iris

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SPAMBASE, folder / "spambase.csv")
    rng = np.random.default_rng(7)
    n = 400
    color = rng.choice(["red", "green", "blue"], size=n).astype(object)
    size = rng.normal(10, 3, size=n)
    weight = rng.normal(50, 10, size=n)
    score = (color == "red") * 2.0 + (size > 10) * 1.5 + rng.normal(0, 0.7, size=n)
    label = np.where(score > 1.8, "yes", "no")
    color[rng.choice(n, 25, replace=False)] = None
    size[rng.choice(n, 30, replace=False)] = np.nan
    pd.DataFrame({"color": color, "size [cm]": size, "weight": weight, "label": label}).to_csv(
        folder / "mixed.csv", index=False)
    diabetes = load_diabetes(as_frame=True).frame
    diabetes.to_csv(folder / "diabetes.csv", index=False)
    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame["species"] = iris.target_names[iris.target]
    frame.to_csv(folder / "iris.csv", index=False)
    inliers = rng.normal(0, 1, size=(480, 3))
    outliers = rng.uniform(5, 8, size=(20, 3)) * rng.choice([-1, 1], size=(20, 3))
    points = np.vstack([inliers, outliers])
    anomalies = pd.DataFrame(points, columns=["a", "b", "c"])
    anomalies["is_outlier"] = [0] * 480 + [1] * 20
    anomalies.sample(frac=1.0, random_state=1).to_csv(folder / "anomalies.csv", index=False)


@dataclass
class LiveDaemon:
    """A daemon running in this process, with a stub connected to it."""

    runtime: Daemon
    settings: Settings
    channel: grpc.Channel
    stub: pb_grpc.ModelManagerStub

    @property
    def address(self) -> str:
        return self.runtime.address

    @property
    def data_root(self) -> Path:
        return self.settings.data_root

    @property
    def registry(self) -> Path:
        return self.settings.registry

    def train(self, model: str, path: str = "spambase.csv", target: str = "is_spam",
              algorithm: str = "xgboost", **fields: object) -> pb.Job:
        """Trains and waits for the job to end; returns the final job."""
        dataset = fields.pop("dataset", None) or pb.Dataset(path=path, target=target)
        job = self.stub.Train(pb.TrainRequest(
            model=model, dataset=dataset, algorithm=algorithm, **fields))  # type: ignore[arg-type]
        return wait_job(self.stub, job.id)

    def stop(self) -> None:
        self.channel.close()
        self.runtime.stop(grace=1)


def wait_job(stub: pb_grpc.ModelManagerStub, job_id: str) -> pb.Job:
    last = None
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=300):
        last = event.job
    assert last is not None
    return last


def start_daemon(base: Path, **overrides: object) -> LiveDaemon:
    """Starts a daemon on 127.0.0.1:0 with its folders under `base` (data written if missing)."""
    if not (base / "data" / "spambase.csv").exists():
        write_datasets(base / "data")
    values: dict[str, object] = {
        "listen": "127.0.0.1:0", "registry": base / "registry", "data_root": base / "data",
        "state_dir": base / "state", "grace_period": 1.0,
        # MODELD_FAST_PATHS=false runs the suite on the libraries' own paths (make
        # test-no-fast-paths), as the daemon would read it.
        "fast_paths": load_settings([], {k: v for k, v in os.environ.items()
                                         if k == "MODELD_FAST_PATHS"}).fast_paths,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    runtime = build_daemon(settings).start()
    channel = grpc.insecure_channel(runtime.address)
    return LiveDaemon(runtime, settings, channel, pb_grpc.ModelManagerStub(channel))


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("datasets")
    write_datasets(folder)
    return folder


@pytest.fixture
def daemon(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    """A fresh daemon with an empty registry and the test datasets in its data root."""
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path)
    yield live
    live.stop()
