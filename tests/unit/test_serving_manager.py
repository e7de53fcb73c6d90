"""ServingManager.view reads the pointer from disk, but only re-reads it when it changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modeld import types as client_types
from modeld.v1 import model_manager_pb2 as pb
from modeld_server.registry import fsio
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.store import RegistryStore
from modeld_server.rpc.convert import LOAD_STATE_TO_PB
from modeld_server.serving.manager import ServingManager
from modeld_server.types import LoadState
from tests.unit._registry_helpers import publish_fake, skip_disk_flush


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServingManager:
    """Two fake versions of model m (never loaded: their artifacts are not models)."""
    skip_disk_flush(monkeypatch)
    store = RegistryStore(tmp_path)
    publish_fake(store)
    publish_fake(store)
    index = RegistryIndex(store)
    index.refresh()
    return ServingManager(index)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


class TestPointer:
    def test_an_old_pointer_is_read_once(self, server: ServingManager,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        age(server.store.paths("m").active, 60)
        assert server.view("m").active == 2
        monkeypatch.setattr(server.store, "read_active", lambda model: pytest.fail("re-read"))
        assert server.view("m").active == 2

    def test_a_replaced_pointer_is_seen_at_once(self, server: ServingManager) -> None:
        """Rollbacks and operators replace ACTIVE; no reload yet, so the view is STALE."""
        pointer = server.store.paths("m").active
        age(pointer, 60)
        assert server.view("m").active == 2
        temp = pointer.with_name("ACTIVE.tmp")
        temp.write_text("1\n")
        age(temp, 60)  # even with an old mtime: a new inode
        os.replace(temp, pointer)
        view = server.view("m")
        assert (view.active, view.state) == (1, LoadState.STALE)

    def test_a_pointer_rewritten_in_place_within_the_clock_tick_is_seen(
            self, server: ServingManager, monkeypatch: pytest.MonkeyPatch) -> None:
        """Same inode, size and (coarse) mtime: only a young pointer's re-read catches it."""
        pointer = server.store.paths("m").active
        assert server.view("m").active == 2  # young: read, not remembered
        stamp = pointer.stat().st_mtime_ns
        pointer.write_text("1\n")
        os.utime(pointer, ns=(stamp, stamp))
        assert server.view("m").active == 1

    def test_a_garbage_pointer_is_reported_every_time(self, server: ServingManager) -> None:
        pointer = server.store.paths("m").active
        pointer.write_text("banana\n")
        age(pointer, 60)
        for _ in range(2):
            view = server.view("m")
            assert view.state == LoadState.FAILED and "not a version number" in view.error

    def test_a_missing_pointer_means_no_active_version(self, server: ServingManager) -> None:
        server.store.paths("m").active.unlink()
        assert server.view("m").state == LoadState.NO_ACTIVE_VERSION


def test_the_racy_window_is_short() -> None:
    assert 0 < fsio.StatCache.RACY_SECONDS <= 5


@pytest.mark.parametrize("state", list(LoadState))
def test_every_load_state_reaches_the_client_by_name(state: LoadState) -> None:
    """DEGRADED (and every other state) has a proto number the client maps back to it."""
    number = LOAD_STATE_TO_PB[state]
    client = client_types.enum_from_pb(client_types.LoadState, pb.LoadState, "LOAD_STATE_",
                                       number)
    assert client.value == state.value
