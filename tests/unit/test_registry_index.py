"""registry/index.py: an in-memory snapshot of the registry, changed only by refresh()."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from modeld_server.errors import NotFound
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.manifest import VersionSummary
from modeld_server.registry.store import RegistryStore
from tests.unit._registry_helpers import publish_fake, skip_disk_flush


@pytest.fixture(autouse=True)
def _fast_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_disk_flush(monkeypatch)


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    return RegistryStore(tmp_path / "registry")


@pytest.fixture
def index(store: RegistryStore) -> RegistryIndex:
    return RegistryIndex(store)


def _numbers(summaries: list[VersionSummary]) -> list[int]:
    return [summary.version for summary in summaries]


class TestRefresh:
    def test_an_empty_registry_has_no_models(self, index: RegistryIndex) -> None:
        """Refreshing an empty root finds nothing, and unknown models are NotFound."""
        assert index.refresh() == []
        assert index.models() == []
        with pytest.raises(NotFound, match=r"^model 'm' not found$"):
            index.entry("m")

    def test_the_index_changes_only_on_refresh(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """A version published after a refresh is invisible until the next one."""
        publish_fake(store)
        index.refresh()
        publish_fake(store)
        assert index.entry("m").versions == [1]
        assert index.refresh() == ["m"]
        entry = index.entry("m")
        assert entry.versions == [1, 2]
        assert entry.active == 2 and entry.pointer_error == ""

    def test_lists_models_sorted(self, store: RegistryStore, index: RegistryIndex) -> None:
        """models() is the sorted set of indexed models."""
        for name in ("b", "a", "c"):
            publish_fake(store, name)
        assert index.refresh() == ["a", "b", "c"]
        assert index.models() == ["a", "b", "c"]

    def test_a_version_without_manifest_is_skipped_until_it_appears(
        self, store: RegistryStore, index: RegistryIndex, tmp_path: Path
    ) -> None:
        """A half-copied version folder is left out, then picked up once its manifest lands."""
        publish_fake(store)
        publish_fake(store)
        manifest = store.paths("m").manifest(2)
        parked = tmp_path / "parked.json"
        manifest.rename(parked)
        index.refresh()
        assert index.entry("m").versions == [1]
        parked.rename(manifest)
        index.refresh()
        assert index.entry("m").versions == [1, 2]
        assert index.entry("m").summaries[2].version == 2

    def test_a_broken_manifest_is_skipped(self, store: RegistryStore, index: RegistryIndex) -> None:
        """A version whose manifest is not valid JSON is not indexed; the others are."""
        publish_fake(store)
        publish_fake(store)
        store.paths("m").manifest(1).write_text("{")
        index.refresh()
        assert index.entry("m").versions == [2]

    def test_known_manifests_are_not_read_again(
        self, store: RegistryStore, index: RegistryIndex, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A re-scan parses only the manifests of versions it has not indexed yet."""
        publish_fake(store)
        publish_fake(store)
        index.refresh()
        publish_fake(store)
        read: list[int] = []
        real_read = store.read_manifest

        def counting_read(model: str, version: int) -> dict[str, Any]:
            read.append(version)
            return real_read(model, version)

        monkeypatch.setattr(store, "read_manifest", counting_read)
        index.refresh()
        assert read == [3]
        assert index.entry("m").versions == [1, 2, 3]

    def test_summaries_keep_only_the_listed_keys(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """The index keeps summary fields; per-file hashes and bookkeeping stay on disk."""
        gate = {"passed": False, "reasons": ["f1 worse than v1"]}
        publish_fake(store, metrics={"auc": 0.9}, job_id="j1", gate=gate)
        index.refresh()
        summary = index.entry("m").summaries[1]
        # The gate's verdict too: ListVersions shows it (it was once left out, and empty).
        assert summary == VersionSummary(version=1, algorithm="x", task="classification",
                                         metrics={"auc": 0.9}, job_id="j1", gate=gate)

    def test_a_version_removed_from_disk_leaves_the_entry(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """A version folder deleted by hand disappears from the entry on refresh."""
        for _ in range(3):
            publish_fake(store)
        index.refresh()
        shutil.rmtree(store.paths("m").version(2))
        index.refresh()
        entry = index.entry("m")
        assert entry.versions == [1, 3]
        assert set(entry.summaries) == {1, 3}

    def test_a_removed_model_disappears_on_full_refresh(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """A model folder deleted from disk is dropped by refresh() with no arguments."""
        publish_fake(store, "keep")
        publish_fake(store, "gone")
        index.refresh()
        shutil.rmtree(store.root / "gone")
        assert index.refresh() == ["keep"]
        assert index.models() == ["keep"]
        with pytest.raises(NotFound):
            index.entry("gone")

    def test_a_targeted_refresh_touches_only_the_named_models(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """refresh([name]) re-reads that model and leaves the rest of the snapshot as it was."""
        publish_fake(store, "a")
        publish_fake(store, "b")
        index.refresh()
        shutil.rmtree(store.root / "a")
        publish_fake(store, "b")
        assert index.refresh(["b"]) == ["b"]
        assert index.models() == ["a", "b"]
        assert index.entry("b").versions == [1, 2]

    def test_a_targeted_refresh_of_a_removed_model_drops_it(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """refresh([name]) of a model whose folder is gone removes it from the index."""
        publish_fake(store, "a")
        index.refresh()
        shutil.rmtree(store.root / "a")
        index.refresh(["a"])
        assert index.models() == []

    def test_a_folder_with_an_invalid_name_does_not_break_refresh(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """A hand-made folder like 'spam copy' is ignored; real models are still indexed."""
        publish_fake(store, "spam")
        shutil.copytree(store.root / "spam", store.root / "spam copy")
        index.refresh()
        assert index.models() == ["spam"]


class TestPointer:
    def test_no_pointer_means_active_zero(self, store: RegistryStore, index: RegistryIndex) -> None:
        """A model with versions but no ACTIVE is indexed with active 0 and no error."""
        publish_fake(store, activate=False)
        index.refresh()
        entry = index.entry("m")
        assert (entry.active, entry.pointer_error) == (0, "")

    def test_a_garbage_pointer_is_reported_not_raised(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """ACTIVE holding garbage: active 0 and pointer_error carrying the store's message."""
        publish_fake(store)
        active = store.paths("m").active
        active.write_text("banana\n")
        index.refresh()
        entry = index.entry("m")
        assert entry.active == 0
        assert entry.pointer_error == f"{active} holds 'banana', not a version number"
        assert entry.versions == [1]

    def test_a_repaired_pointer_clears_the_error(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """Once ACTIVE is fixed, the next refresh shows the version and no error."""
        publish_fake(store)
        store.paths("m").active.write_text("banana\n")
        index.refresh()
        store.paths("m").active.write_text("1\n")
        index.refresh()
        entry = index.entry("m")
        assert (entry.active, entry.pointer_error) == (1, "")

    def test_an_undecodable_pointer_is_reported_not_raised(
        self, store: RegistryStore, index: RegistryIndex
    ) -> None:
        """ACTIVE holding non-UTF-8 bytes is a pointer_error like any other garbage."""
        publish_fake(store)
        store.paths("m").active.write_bytes(b"\xff\xfe")
        index.refresh()
        assert "not a version number" in index.entry("m").pointer_error


class TestPage:
    @pytest.fixture
    def five(self, store: RegistryStore, index: RegistryIndex) -> RegistryIndex:
        """An index of model m with versions 1..5."""
        for _ in range(5):
            publish_fake(store)
        index.refresh()
        return index

    def test_the_first_page_is_the_newest(self, five: RegistryIndex) -> None:
        """Below the highest+1, a page of 2 is the two newest versions, newest first."""
        assert _numbers(five.page("m", 6, 2)) == [5, 4]

    def test_pages_continue_strictly_below_the_last_number(self, five: RegistryIndex) -> None:
        """Paging with the last version seen as `below` walks down without repeats or gaps."""
        pages = []
        below = 6
        while batch := _numbers(five.page("m", below, 2)):
            pages.append(batch)
            below = batch[-1]
        assert pages == [[5, 4], [3, 2], [1]]

    @pytest.mark.parametrize(("below", "size", "expected"), [
        (1, 10, []), (0, 10, []), (2, 10, [1]), (5, 1, [4]), (100, 10, [5, 4, 3, 2, 1]),
        (6, 5, [5, 4, 3, 2, 1]), (6, 0, []), (4, 3, [3, 2, 1]),
    ])
    def test_boundaries(
        self, five: RegistryIndex, below: int, size: int, expected: list[int]
    ) -> None:
        """`below` is exclusive, `size` caps the page, and nothing exists below 1."""
        assert _numbers(five.page("m", below, size)) == expected

    def test_paging_skips_holes(self, store: RegistryStore, five: RegistryIndex) -> None:
        """With versions 1, 2, 4, 5 indexed, below=5 size=2 returns 4 then 2."""
        shutil.rmtree(store.paths("m").version(3))
        five.refresh()
        assert _numbers(five.page("m", 5, 2)) == [4, 2]

    def test_an_unknown_model_is_not_found(self, index: RegistryIndex) -> None:
        """Paging a model the index does not know raises NotFound."""
        with pytest.raises(NotFound, match=r"^model 'ghost' not found$"):
            index.page("ghost", 10, 10)
