"""Per-model documents: read from a stat-keyed cache, never stale, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeld_server.errors import FailedPrecondition
from modeld_server.registry.meta import ALIASES, ModelMeta
from modeld_server.registry.store import RegistryStore
from tests.unit._registry_helpers import publish_fake, skip_disk_flush
from tests.unit.test_registry_fsio import aged


@pytest.fixture
def meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelMeta:
    skip_disk_flush(monkeypatch)
    store = RegistryStore(tmp_path)
    publish_fake(store)
    publish_fake(store)
    return ModelMeta(store)


class TestRead:
    def test_an_alias_set_by_another_replica_is_seen(self, meta: ModelMeta) -> None:
        meta.set_alias("m", "prod", 1)
        aged(meta.store.paths("m").root / ALIASES)
        assert meta.aliases("m") == {"prod": 1}
        ModelMeta(RegistryStore(meta.store.root)).set_alias("m", "prod", 2)
        aged(meta.store.paths("m").root / ALIASES)
        assert meta.aliases("m") == {"prod": 2}

    def test_an_unchanged_document_is_not_read_again(
            self, meta: ModelMeta, monkeypatch: pytest.MonkeyPatch) -> None:
        meta.set_alias("m", "prod", 1)
        aged(meta.store.paths("m").root / ALIASES)
        assert meta.aliases("m") == {"prod": 1}
        monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read again"))
        assert meta.aliases("m") == {"prod": 1}

    def test_each_caller_gets_its_own_copy(self, meta: ModelMeta) -> None:
        meta.set_alias("m", "prod", 1)
        aged(meta.store.paths("m").root / ALIASES)
        meta.read("m", ALIASES)["prod"] = 99  # type: ignore[index]
        assert meta.read("m", ALIASES) == {"prod": 1}

    def test_a_deleted_document_reads_as_absent(self, meta: ModelMeta) -> None:
        meta.set_alias("m", "prod", 1)
        aged(meta.store.paths("m").root / ALIASES)
        assert meta.read("m", ALIASES) == {"prod": 1}
        (meta.store.paths("m").root / ALIASES).unlink()
        assert meta.read("m", ALIASES) is None


def logged(meta: ModelMeta) -> list[dict[str, object]]:
    """The model's events without their times."""
    return [{k: v for k, v in e.items() if k != "time"} for e in meta.store.read_events("m")]


class TestAliasEvents:
    def test_a_new_alias_logs_no_previous_version(self, meta: ModelMeta) -> None:
        """previous is 0 (none) for an alias that did not exist, not the version it now names."""
        meta.set_alias("m", "x", 2)
        assert logged(meta)[-1] == {"event": "alias_set", "alias": "x", "version": 2,
                                    "previous": 0}

    def test_a_moved_alias_logs_where_it_pointed_before(self, meta: ModelMeta) -> None:
        """Moving x from 2 to 1 (with or without --expect) logs previous 2."""
        meta.set_alias("m", "x", 2)
        meta.set_alias("m", "x", 1, expected=2)
        meta.set_alias("m", "x", 2)
        assert logged(meta)[-2:] == [
            {"event": "alias_set", "alias": "x", "version": 1, "previous": 2},
            {"event": "alias_set", "alias": "x", "version": 2, "previous": 1}]

    def test_a_refused_compare_and_set_logs_nothing(self, meta: ModelMeta) -> None:
        meta.set_alias("m", "x", 2)
        with pytest.raises(FailedPrecondition):
            meta.set_alias("m", "x", 1, expected=1)
        assert [e["event"] for e in logged(meta)].count("alias_set") == 1

    def test_a_deleted_alias_logs_the_version_it_named(self, meta: ModelMeta) -> None:
        meta.set_alias("m", "x", 2)
        assert meta.delete_alias("m", "x", expected=2) == 2
        assert logged(meta)[-1] == {"event": "alias_deleted", "alias": "x", "version": 2}
