"""ListVersions' cached conversion (the index keeps each version's bytes) answers exactly what
converting each version anew does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.manifest import VersionSummary
from modeld_server.registry.store import RegistryStore
from modeld_server.rpc import convert
from modeld_server.types import VersionPage


def summary(version: int, **extra: Any) -> VersionSummary:
    return VersionSummary.from_json({
        "version": version, "algorithm": "xgboost", "task": "classification",
        "params": {"max_depth": "4"}, "created_at": f"2026-11-29T10:00:0{version}+00:00",
        "job_id": f"j{version}", "dataset": {"path": "spambase.csv", "rows": 4601},
        "metrics": {"f1": {"mean": 0.9, "std": 0.01, "folds": [0.89, 0.91]}},
        "features": ["a", "b"], "classes": [0, 1],
        "confusion_matrix": {"labels": ["0", "1"], "counts": [5, 1, 2, 7]}, **extra})


@pytest.fixture
def index(tmp_path: Path) -> RegistryIndex:
    return RegistryIndex(RegistryStore(tmp_path / "registry"))


def page_of(index: RegistryIndex, versions: list[VersionSummary], active: int,
            aliases: dict[str, int] | None = None, token: str = "") -> VersionPage:
    return VersionPage(versions, token, active, aliases=aliases or {}, encoded=index.encoded)


def expected(model: str, page: VersionPage, aliases: dict[str, int]) -> pb.ListVersionsResponse:
    return pb.ListVersionsResponse(
        versions=[convert.version_to_pb(model, s, page.active, aliases) for s in page.versions],
        next_page_token=page.next_token, active_version=page.active)


def test_cached_pages_equal_fresh_conversion_as_state_and_aliases_change(
        index: RegistryIndex) -> None:
    versions = [summary(3, state="rejected"), summary(2), summary(1)]
    for active, aliases in [(2, {"champion": 2, "b": 3, "a": 3}), (1, {}), (3, {"x": 1})]:
        page = page_of(index, versions, active, aliases, "tok")
        assert convert.versions_to_pb("m", page) == expected("m", page, aliases)


def test_a_page_without_the_index_converts_each_version_anew() -> None:
    page = VersionPage([summary(2), summary(1)], "", 2, aliases={"a": 1})
    assert convert.versions_to_pb("m", page) == expected("m", page, {"a": 1})


def test_a_recreated_version_number_is_not_served_from_the_cache(index: RegistryIndex) -> None:
    """Same model and number, another training: the key (created_at, job_id) differs."""
    convert.versions_to_pb("r", page_of(index, [summary(1)], 1))
    again = summary(1, algorithm="random_forest", job_id="j9")
    assert convert.versions_to_pb("r", page_of(index, [again], 1)).versions[0].algorithm \
        == "random_forest"


def test_each_version_is_converted_once(index: RegistryIndex) -> None:
    """The second page is assembled from the stored bytes, not from the summary."""
    first = summary(1)
    convert.versions_to_pb("once", page_of(index, [first], 1))
    changed = replace(first, algorithm="changed behind the cache's back")
    assert convert.versions_to_pb("once", page_of(index, [changed], 1)).versions[0].algorithm \
        == "xgboost"


def test_the_kept_bytes_start_over_past_their_bound(index: RegistryIndex,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ENCODED_MAX bytes the index forgets what it kept, then keeps the new one."""
    from modeld_server.registry import index as index_module

    one = len(convert.version_to_pb("b", summary(1), 0, {}).SerializeToString())
    convert.versions_to_pb("b", page_of(index, [summary(1)], 1))
    monkeypatch.setattr(index_module, "ENCODED_MAX", one + one // 2)
    first = summary(1)
    convert.versions_to_pb("c", page_of(index, [first], 1))  # past the bound: all forgotten
    changed = replace(first, algorithm="rebuilt")
    assert convert.versions_to_pb("c", page_of(index, [changed], 1)).versions[0].algorithm \
        == "xgboost"
    convert.versions_to_pb("d", page_of(index, [summary(2)], 2))  # past it again: "c" gone
    assert convert.versions_to_pb("c", page_of(index, [changed], 1)).versions[0].algorithm \
        == "rebuilt"
