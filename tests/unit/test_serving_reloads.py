"""ServingManager's retry backoff and its cache of loaded versions, with a stand-in loader and a
clock stepped by hand (the registry is real: fake versions published to a temp folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeld_server.errors import FailedPrecondition
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.store import RegistryStore
from modeld_server.serving.manager import ServingManager
from modeld_server.types import LoadState
from tests.unit._registry_helpers import publish_fake, skip_disk_flush


class Loaded:
    """What ServingManager keeps of a loaded version."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.load_ms = 0.0
        self.fingerprint: tuple[object, ...] = ()
        self.loaded_at = 0.0


class Loader:
    """Loads (or fails to load) versions; counts the calls per version."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.broken: set[int] = set()

    def __call__(self, model: str, version: int, folder: Path, manifest: Any) -> Loaded:
        self.calls.append(version)
        if version in self.broken:
            raise ValueError(f"v{version} is broken")
        return Loaded(version)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryStore:
    skip_disk_flush(monkeypatch)
    return RegistryStore(tmp_path)


def serving(store: RegistryStore, loader: Loader, clock: Clock,
            keep_loaded: int = 2) -> ServingManager:
    return ServingManager(RegistryIndex(store), keep_loaded, load=loader, clock=clock)


class TestBackoff:
    def test_a_failed_load_waits_twice_as_long_each_time(self, store: RegistryStore) -> None:
        """0.5 s * 2**failures: 1 s after the first failure, 2 s after the second."""
        publish_fake(store)
        loader, clock = Loader(), Clock()
        loader.broken.add(1)
        server = serving(store, loader, clock)
        server.poll_once()
        assert loader.calls == [1]
        assert (server.view("m").state, server.view("m").error) == (
            LoadState.FAILED, "ValueError: v1 is broken")
        clock.now += 0.99
        server.poll_once()
        assert loader.calls == [1]
        clock.now += 0.01
        server.poll_once()
        assert loader.calls == [1, 1]
        clock.now += 1.99
        server.poll_once()
        assert loader.calls == [1, 1]
        clock.now += 0.01
        loader.broken.clear()
        server.poll_once()
        assert loader.calls == [1, 1, 1]
        assert server.view("m").state is LoadState.READY

    def test_the_wait_stops_growing_at_a_minute(self, store: RegistryStore) -> None:
        publish_fake(store)
        loader, clock = Loader(), Clock()
        loader.broken.add(1)
        server = serving(store, loader, clock)
        for _ in range(12):  # 0.5 * 2**12 s would be over half an hour
            server.poll_once(force=True)
        clock.now += 60.0
        server.poll_once()
        assert len(loader.calls) == 13

    def test_force_retries_at_once(self, store: RegistryStore) -> None:
        publish_fake(store)
        loader, clock = Loader(), Clock()
        loader.broken.add(1)
        server = serving(store, loader, clock)
        server.poll_once()
        server.poll_once(force=True)
        assert loader.calls == [1, 1]

    def test_a_new_active_version_is_loaded_whatever_the_backoff(
            self, store: RegistryStore) -> None:
        publish_fake(store)
        loader, clock = Loader(), Clock()
        loader.broken.add(1)
        server = serving(store, loader, clock)
        server.poll_once()
        publish_fake(store)
        server.poll_once()
        assert loader.calls == [1, 2]
        assert (server.view("m").active, server.view("m").loaded) == (2, 2)

    def test_a_version_that_cannot_load_is_refused_before_activation(
            self, store: RegistryStore) -> None:
        publish_fake(store)
        publish_fake(store, activate=False)
        loader = Loader()
        loader.broken.add(2)
        server = serving(store, loader, Clock())
        server.poll_once()
        with pytest.raises(FailedPrecondition) as err:
            server.preload("m", 2)
        assert err.value.message == "model 'm' v2 cannot be loaded: ValueError: v2 is broken"


class TestCache:
    def test_keep_loaded_versions_stay_besides_the_current_one(
            self, store: RegistryStore) -> None:
        for _ in range(4):
            publish_fake(store, activate=False)
        publish_fake(store)  # v5 active
        loader = Loader()
        server = serving(store, loader, Clock(), keep_loaded=1)
        server.poll_once()
        for version in (1, 2, 3):
            assert server.get("m", version).version == version
        assert server.answering("m") == [3, 5]  # the oldest pinned ones went; never v5

    def test_a_cached_version_is_not_loaded_again(self, store: RegistryStore) -> None:
        publish_fake(store, activate=False)
        publish_fake(store)
        loader = Loader()
        server = serving(store, loader, Clock())
        server.poll_once()
        server.get("m", 1)
        server.get("m", 1)
        server.preload("m", 1)
        server.activate("m", 1)
        assert loader.calls == [2, 1]
        assert server.get("m").version == 1
        assert server.loaded_versions("m") == {1, 2}
