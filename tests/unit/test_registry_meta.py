"""Per-model documents: read from a stat-keyed cache, never stale, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest

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
