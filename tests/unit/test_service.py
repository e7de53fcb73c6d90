"""service.py without a daemon: Train's validation and the page tokens of ListVersions and
ListJobs, on a service composed by compose.build_parts (a part swapped for a fake where the
real one would reach outside this machine)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeld_server import pages
from modeld_server.compose import build_parts
from modeld_server.config import Settings
from modeld_server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from modeld_server.registry.meta import ModelMeta
from modeld_server.service import ModelService
from modeld_server.types import DatasetSpec, Task, TrainInput
from tests.unit._registry_helpers import publish_fake, skip_disk_flush

CSV = "a,b,label\n" + "".join(f"{i},{i % 7},{'yes' if i % 3 else 'no'}\n" for i in range(40))


class FakeDask:
    """A Dask cluster that is configured (require passes) and never started."""

    def require(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelService]:
    skip_disk_flush(monkeypatch)
    settings = Settings(registry=tmp_path / "registry", data_root=tmp_path / "data",
                        state_dir=tmp_path / "state", max_dataset_bytes=10_000)
    parts = build_parts(settings)
    (settings.data_root / "d.csv").write_text(CSV)
    built = ModelService(settings, dataclasses.replace(parts, dask=FakeDask()))  # type: ignore[arg-type]
    yield built
    built.close(wait=1.0)


def train(**fields: Any) -> TrainInput:
    values: dict[str, Any] = {"model": "m", "algorithm": "random_forest", "params": {},
                              "dataset": DatasetSpec("d.csv", "label")}
    return TrainInput(**(values | fields))


class TestValidateTrain:
    def test_a_good_request_becomes_a_spec_with_defaults(self, service: ModelService) -> None:
        spec = service.validate_train(train())
        assert (spec.model, spec.task, spec.cv_folds, spec.seed, spec.engine) == (
            "m", Task.CLASSIFICATION, 5, 42, "local")
        assert spec.task_sampled is False

    @pytest.mark.parametrize(("fields", "error", "message"), [
        ({"algorithm": ""}, InvalidArgument, "algorithm is required"),
        ({"cv_folds": 21}, InvalidArgument, "cv_folds must be between 2 and 20, got 21"),
        ({"seed": 2**32}, InvalidArgument, f"seed must be between 0 and {2**32 - 1}, got "
                                           f"{2**32}"),
        ({"request_id": "r" * 129}, InvalidArgument, "request_id is longer than 128 characters"),
        ({"engine": "spark"}, InvalidArgument, "engine 'spark' is not one of: local, dask, auto"),
        ({"dataset": DatasetSpec("d.csv")}, InvalidArgument,
         "dataset.target is required for algorithm 'random_forest'"),
        ({"task": Task.REGRESSION, "calibration": "sigmoid"}, InvalidArgument,
         "calibration sigmoid needs a classifier; this is regression"),
        ({"engine": "dask", "algorithm": "xgboost", "calibration": "sigmoid"},
         FailedPrecondition,
         "engine dask does not take calibration with algorithm 'xgboost' in this version"),
    ])
    def test_each_bad_field_is_named(self, service: ModelService, fields: dict[str, Any],
                                     error: type[Exception], message: str) -> None:
        with pytest.raises(error) as err:
            service.validate_train(train(**fields))
        assert err.value.message == message  # type: ignore[attr-defined]

    def test_a_dataset_over_max_dataset_bytes_is_refused(self, service: ModelService) -> None:
        (service.settings.data_root / "big.csv").write_text(CSV * 40)
        size = (service.settings.data_root / "big.csv").stat().st_size
        with pytest.raises(ResourceExhausted) as err:
            service.validate_train(train(dataset=DatasetSpec("big.csv", "label")))
        assert err.value.message == (f"dataset.path 'big.csv' has {size} bytes, more than "
                                     "max_dataset_bytes=10000")

    def test_the_algorithm_decides_the_task_when_it_can(self, service: ModelService) -> None:
        spec = service.validate_train(train(algorithm="ridge",
                                            dataset=DatasetSpec("d.csv", "a")))
        assert spec.task is Task.REGRESSION


class TestVersionPages:
    def test_pages_walk_down_to_the_oldest_version(self, service: ModelService) -> None:
        for _ in range(5):
            publish_fake(service.store, "m")
        seen, token = [], ""
        while True:
            page = service.list_versions("m", 2, token)
            seen.append([s.version for s in page.versions])
            token = page.next_token
            if not token:
                break
        assert seen == [[5, 4], [3, 2], [1]]

    def test_a_state_filter_skips_other_versions_across_batches(
            self, service: ModelService) -> None:
        for i in range(6):
            publish_fake(service.store, "m", activate=i == 2)
        page = service.list_versions("m", 2, "", "inactive")
        assert [s.version for s in page.versions] == [6, 5]
        assert [s.version for s in service.list_versions("m", 10, page.next_token,
                                                         "inactive").versions] == [4, 2, 1]
        active = service.list_versions("m", 10, "", "active")
        assert ([s.version for s in active.versions], active.next_token) == ([3], "")

    def test_the_page_carries_the_models_aliases(self, service: ModelService) -> None:
        publish_fake(service.store, "m")
        ModelMeta(service.store).set_alias("m", "prod", 1, None)
        assert service.list_versions("m", 0, "").aliases == {"prod": 1}

    @pytest.mark.parametrize("token", ["garbage", "djE6", "djI6Mw==", "djE6LTE="])
    def test_a_token_this_server_did_not_issue_is_refused(self, service: ModelService,
                                                          token: str) -> None:
        publish_fake(service.store, "m")
        with pytest.raises(InvalidArgument) as err:
            service.list_versions("m", 1, token)
        assert err.value.message == (f"page_token {token!r} is not a token this server "
                                     "issued")

    def test_tokens_round_trip(self) -> None:
        for number in (1, 7, 10_000):
            assert pages.decode_token(pages.encode_token(number)) == number

    @pytest.mark.parametrize("size", [-1, 1001])
    def test_page_size_is_bounded(self, service: ModelService, size: int) -> None:
        publish_fake(service.store, "m")
        with pytest.raises(InvalidArgument) as err:
            service.list_versions("m", size, "")
        assert err.value.message == f"page_size must be between 0 and 1000, got {size}"


class TestJobPages:
    def test_an_unknown_job_token_is_refused(self, service: ModelService) -> None:
        with pytest.raises(InvalidArgument) as err:
            service.list_jobs("", 5, "nope")
        assert err.value.message == "page_token refers to unknown job 'nope'"

    def test_no_jobs_is_an_empty_page(self, service: ModelService) -> None:
        assert service.list_jobs("m", 0, "") == ([], "")
