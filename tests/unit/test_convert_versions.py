"""ListVersions' cached conversion answers exactly what converting each version anew does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.registry.manifest import VersionSummary
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


def expected(model: str, page: VersionPage, aliases: dict[str, int]) -> pb.ListVersionsResponse:
    return pb.ListVersionsResponse(
        versions=[convert.version_to_pb(model, s, page.active, aliases) for s in page.versions],
        next_page_token=page.next_token, active_version=page.active)


def test_cached_pages_equal_fresh_conversion_as_state_and_aliases_change() -> None:
    page = VersionPage([summary(3, state="rejected"), summary(2), summary(1)], "tok", 2)
    for active, aliases in [(2, {"champion": 2, "b": 3, "a": 3}), (1, {}), (3, {"x": 1})]:
        page = VersionPage(page.versions, page.next_token, active)
        assert convert.versions_to_pb("m", page, aliases) == expected("m", page, aliases)


def test_a_recreated_version_number_is_not_served_from_the_cache() -> None:
    """Same model and number, another training: the key (created_at, job_id) differs."""
    convert.versions_to_pb("r", VersionPage([summary(1)], "", 1), {})
    again = summary(1, algorithm="random_forest", job_id="j9")
    page = VersionPage([again], "", 1)
    assert convert.versions_to_pb("r", page, {}).versions[0].algorithm == "random_forest"


def test_each_version_is_converted_once() -> None:
    """The second page is assembled from the stored bytes, not from the summary."""
    first = summary(1)
    convert.versions_to_pb("once", VersionPage([first], "", 1), {})
    changed = replace(first, algorithm="changed behind the cache's back")
    assert convert.versions_to_pb("once", VersionPage([changed], "", 1), {}).versions[0].algorithm \
        == "xgboost"
