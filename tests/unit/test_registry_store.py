"""registry/store.py: atomic publishing, the active pointer, the event log, integrity checks."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from modeld_server.errors import FailedPrecondition, IntegrityError, InvalidArgument, NotFound
from modeld_server.registry import fsio
from modeld_server.registry.manifest import Manifest
from modeld_server.registry.store import MANIFEST_SCHEMA, Published, RegistryStore, Staging
from tests.unit._registry_helpers import (
    event_names,
    manifest_on_disk,
    publish_fake,
    publish_many,
    skip_disk_flush,
)

PER_PROCESS = 15


@pytest.fixture(autouse=True)
def _fast_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_disk_flush(monkeypatch)


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    return RegistryStore(tmp_path / "registry")


def _crash(*_args: object) -> None:
    raise OSError("simulated crash before the rename")


def _die(staging: Staging) -> None:
    """What the OS does when a builder process dies: its lock fd closes, nothing else."""
    assert staging.lock_fd is not None
    os.close(staging.lock_fd)
    staging.lock_fd = None


class TestPublish:
    def test_numbers_versions_from_one(self, store: RegistryStore) -> None:
        """The first version of a model is 1, the next 2."""
        assert publish_fake(store) == 1
        assert publish_fake(store) == 2
        assert store.version_numbers("m") == [1, 2]

    def test_moves_the_staging_folder_into_versions(self, store: RegistryStore) -> None:
        """The artifacts land in versions/<n> beside the manifest; staging is left empty."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"abc")
        store.publish(staging, {"algorithm": "x", "task": "classification"}, activate=False)
        folder = store.paths("m").version(1)
        assert sorted(os.listdir(folder)) == ["manifest.json", "model.bin"]
        assert (folder / "model.bin").read_bytes() == b"abc"
        assert not staging.path.exists()
        assert os.listdir(store.paths("m").staging) == []
        assert staging.lock_fd is None

    def test_manifest_records_identity_and_every_artifact(self, store: RegistryStore) -> None:
        """The manifest keeps the caller's fields and adds schema, model, version and hashes."""
        publish_fake(store, payload=b"abc", job_id="ignored-field-kept")
        manifest = store.read_manifest("m", 1)
        assert manifest.algorithm == "x" and manifest.task == "classification"
        assert manifest.job_id == "ignored-field-kept"
        assert manifest.manifest_schema == MANIFEST_SCHEMA
        assert manifest.model == "m" and manifest.version == 1
        assert manifest.artifacts == {"model.bin": {
            "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        }}

    def test_the_caller_cannot_choose_the_number_or_the_artifacts(
        self, store: RegistryStore
    ) -> None:
        """version, model and artifacts given by the caller are overwritten by the store."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        store.publish(staging, {"version": 99, "model": "other", "artifacts": {"fake": {}}},
                      activate=False)
        manifest = manifest_on_disk(store, "m", 1)
        assert (manifest["version"], manifest["model"]) == (1, "m")
        assert list(manifest["artifacts"]) == ["model.bin"]

    def test_a_published_version_verifies(self, store: RegistryStore) -> None:
        """What publish wrote passes verify unchanged."""
        publish_fake(store)
        store.verify("m", 1, store.read_manifest("m", 1))

    def test_activate_moves_the_pointer_and_logs_both_events(self, store: RegistryStore) -> None:
        """With activate, ACTIVE names the new version and the log says published, activated."""
        publish_fake(store)
        publish_fake(store)
        assert store.read_active("m") == 2
        events = store.read_events("m")
        assert [e["event"] for e in events] == ["published", "activated"] * 2
        assert events[3]["version"] == 2 and events[3]["previous"] == 1

    def test_without_activate_the_pointer_stays(self, store: RegistryStore) -> None:
        """Without activate, only a published event is logged and ACTIVE does not move."""
        publish_fake(store)
        publish_fake(store, activate=False)
        assert store.read_active("m") == 1
        assert event_names(store) == ["published", "activated", "published"]

    def test_a_rejected_version_is_published_but_never_activated(
        self, store: RegistryStore
    ) -> None:
        """state 'rejected' logs published then rejected with the gate's reasons; ACTIVE stays."""
        publish_fake(store)
        publish_fake(store, state="rejected", gate={"reasons": ["auc fell", "drift"]})
        assert store.version_numbers("m") == [1, 2]
        assert store.read_active("m") == 1
        last = store.read_events("m")[-1]
        assert (last["event"], last["version"]) == ("rejected", 2)
        assert last["reason"] == "auc fell; drift"
        assert event_names(store)[-2:] == ["published", "rejected"]

    def test_the_next_number_follows_the_highest_even_past_a_gap(
        self, store: RegistryStore
    ) -> None:
        """Numbers are never reused below the highest: after 1 and 5 comes 6."""
        publish_fake(store)
        publish_fake(store)
        store.paths("m").version(2).rename(store.paths("m").version(5))
        assert publish_fake(store) == 6


@pytest.fixture
def immutable_model(store: RegistryStore) -> Iterator[Path]:
    """Model 'm' with v1 active, its folder made immutable (chattr +i) for the test."""
    publish_fake(store)
    root = store.paths("m").root
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    done = subprocess.run(["chattr", "+i", str(root)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["chattr", "-i", str(root)], check=False)


class TestFailureAfterRename:
    def test_an_unwritable_pointer_publishes_without_activating(
        self, store: RegistryStore, immutable_model: Path
    ) -> None:
        """ACTIVE cannot be replaced: v2 is published (folder, event) and the result says
        it was not activated and why; nothing is raised, ACTIVE still names v1."""
        result = store.publish(_staged(store), {"algorithm": "x"}, activate=True, job_id="j2")
        assert result == Published(2, activated=False, not_activated=(
            f"could not write {immutable_model / 'ACTIVE'}: Operation not permitted"))
        assert store.version_numbers("m") == [1, 2]
        assert store.read_active("m") == 1
        assert event_names(store) == ["published", "activated", "published"]
        assert not [p for p in immutable_model.iterdir() if p.name.endswith(".tmp")]

    def test_without_activate_nothing_is_reported_missing(
        self, store: RegistryStore, immutable_model: Path
    ) -> None:
        """A version not asked to be activated is simply published, with no reason given."""
        result = store.publish(_staged(store), {"algorithm": "x"}, activate=False)
        assert result == Published(2, activated=False, not_activated="")

    def test_an_activated_version_says_so(self, store: RegistryStore) -> None:
        """The ordinary case: activated, no reason."""
        assert store.publish(_staged(store), {"algorithm": "x"}, activate=True) == Published(
            1, activated=True)


def _staged(store: RegistryStore) -> Staging:
    staging = store.begin_staging("m")
    (staging.path / "model.bin").write_bytes(b"w")
    return staging


class TestCrashBeforeRename:
    def test_a_first_version_that_crashes_leaves_nothing_visible(
        self, store: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A crash before the rename: versions/ empty, no ACTIVE, no event."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        monkeypatch.setattr("modeld_server.registry.store.os.rename", _crash)
        with pytest.raises(OSError, match="simulated crash"):
            store.publish(staging, {"algorithm": "x"}, activate=True)
        paths = store.paths("m")
        assert os.listdir(paths.versions) == []
        assert not paths.active.exists()
        assert store.read_events("m") == []
        staging.discard()

    def test_a_later_version_that_crashes_changes_nothing(
        self, store: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With v1 live, a crashed publish leaves versions, ACTIVE and the log as they were."""
        publish_fake(store)
        events_before = store.paths("m").events.read_bytes()
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w2")
        monkeypatch.setattr("modeld_server.registry.store.os.rename", _crash)
        with pytest.raises(OSError, match="simulated crash"):
            store.publish(staging, {"algorithm": "x"}, activate=True)
        assert store.version_numbers("m") == [1]
        assert store.read_active("m") == 1
        assert store.paths("m").events.read_bytes() == events_before
        staging.discard()

    def test_the_crash_releases_the_model_lock_and_burns_no_number(
        self, store: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a crashed publish the next one gets the lock and the unused number."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        with monkeypatch.context() as patch:
            patch.setattr("modeld_server.registry.store.os.rename", _crash)
            with pytest.raises(OSError):
                store.publish(staging, {"algorithm": "x"}, activate=True)
        assert publish_fake(store) == 1
        staging.discard()

    def test_the_leftover_is_swept_once_its_builder_is_gone(
        self, store: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The staging folder survives sweeps while its lock is held and goes once it is free."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        with monkeypatch.context() as patch:
            patch.setattr("modeld_server.registry.store.os.rename", _crash)
            with pytest.raises(OSError):
                store.publish(staging, {"algorithm": "x"}, activate=True)
        assert store.clean_stale_staging() == 0
        assert staging.path.is_dir()
        _die(staging)
        assert store.clean_stale_staging() == 1
        assert os.listdir(store.paths("m").staging) == []
        assert store.version_numbers("m") == []


class TestConcurrentWriters:
    def test_two_processes_get_every_number_exactly_once(self, store: RegistryStore) -> None:
        """Two processes publishing N versions each into one model get exactly 1..2N."""
        context = multiprocessing.get_context("spawn")
        start = context.Barrier(2)
        results = context.Queue()
        workers = [
            context.Process(target=publish_many,
                            args=(str(store.root), "m", PER_PROCESS, start, results))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        # The results are a few bytes, so joining before draining the queue cannot block.
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0, 0]
        got = [results.get(timeout=5) for _ in workers]
        everything = sorted(got[0] + got[1])
        assert everything == list(range(1, 2 * PER_PROCESS + 1))
        assert all(numbers == sorted(numbers) for numbers in got)
        assert store.version_numbers("m") == everything
        for number in everything:
            assert manifest_on_disk(store, "m", number)["version"] == number
            store.verify("m", number, store.read_manifest("m", number))
        published = [e["version"] for e in store.read_events("m") if e["event"] == "published"]
        assert sorted(published) == everything
        assert os.listdir(store.paths("m").staging) == []


class TestVerify:
    @pytest.fixture
    def published(self, store: RegistryStore) -> Path:
        """Version 1 of m with model.bin = b'weights'; returns the artifact path."""
        publish_fake(store, payload=b"weights")
        return store.paths("m").version(1) / "model.bin"

    def test_a_flipped_byte_fails_the_checksum(
        self, store: RegistryStore, published: Path
    ) -> None:
        """Same size, one byte different: IntegrityError naming the file and sha256."""
        data = bytearray(published.read_bytes())
        data[3] ^= 0x01
        published.write_bytes(bytes(data))
        with pytest.raises(IntegrityError) as info:
            store.verify("m", 1, store.read_manifest("m", 1))
        assert info.value.message == "'m' v1: artifact model.bin fails its sha256"

    def test_a_changed_size_names_both_sizes(
        self, store: RegistryStore, published: Path
    ) -> None:
        """A longer file: IntegrityError naming the file, its size and the manifest's."""
        published.write_bytes(b"weights!")
        with pytest.raises(IntegrityError) as info:
            store.verify("m", 1, store.read_manifest("m", 1))
        assert info.value.message == "'m' v1: artifact model.bin has 8 bytes, manifest says 7"

    def test_a_missing_artifact_is_named(self, store: RegistryStore, published: Path) -> None:
        """A deleted artifact: IntegrityError saying which file is missing."""
        published.unlink()
        with pytest.raises(IntegrityError) as info:
            store.verify("m", 1, store.read_manifest("m", 1))
        assert info.value.message == "'m' v1: artifact model.bin is missing"

    @pytest.mark.parametrize("name", ["../ACTIVE", "sub/model.bin", "/etc/passwd", ".hidden",
                                      "..", "."])
    def test_a_path_outside_the_version_folder_is_refused(
        self, store: RegistryStore, published: Path, name: str
    ) -> None:
        """An artifact name with '/' or a leading '.' is refused before any file is opened."""
        manifest = store.read_manifest("m", 1)
        manifest = replace(manifest, artifacts={**manifest.artifacts,
                                                name: {"size": 1, "sha256": "0" * 64}})
        with pytest.raises(IntegrityError) as info:
            store.verify("m", 1, manifest)
        assert info.value.message == f"manifest of 'm' v1 names bad file {name!r}"

    def test_a_manifest_without_artifacts_is_refused(
        self, store: RegistryStore, published: Path
    ) -> None:
        """A missing or empty artifacts field is an IntegrityError."""
        manifest = store.read_manifest("m", 1)
        for artifacts in ({}, None):
            body = {k: v for k, v in manifest.raw.items() if k != "artifacts"}
            if artifacts is not None:
                body["artifacts"] = artifacts
            with pytest.raises(IntegrityError, match=r"^manifest of 'm' v1 lists no artifacts$"):
                store.verify("m", 1, Manifest.from_json(body))

    @pytest.mark.parametrize(("artifacts", "found"),
                             [(None, "null"), ([], "an array"), ("model.bin", "a string")])
    def test_a_mistyped_artifacts_field_is_refused_on_read(
        self, store: RegistryStore, published: Path, artifacts: object, found: str
    ) -> None:
        """The manifest is refused as it is read, naming the file, the key and both types."""
        path = store.paths("m").manifest(1)
        body = json.loads(path.read_text())
        path.write_text(json.dumps(dict(body, artifacts=artifacts)))
        with pytest.raises(IntegrityError) as info:
            store.read_manifest("m", 1)
        assert info.value.message == f"{path}: key 'artifacts' is {found}, expected an object"


class TestReadManifest:
    def test_a_missing_version_is_not_found(self, store: RegistryStore) -> None:
        """No such version folder: NotFound naming version and model."""
        publish_fake(store)
        with pytest.raises(NotFound, match=r"^version 9 of model 'm' not found$"):
            store.read_manifest("m", 9)

    def test_a_folder_without_manifest_is_not_found(self, store: RegistryStore) -> None:
        """A version folder whose manifest is missing (half copied) is NotFound."""
        publish_fake(store)
        store.paths("m").manifest(1).unlink()
        with pytest.raises(NotFound, match=r"^version 1 of model 'm' not found$"):
            store.read_manifest("m", 1)

    @pytest.mark.parametrize("raw", [b"", b"{", b"{'version': 1}", b"\xff\xfe"])
    def test_invalid_json_is_an_integrity_error(self, store: RegistryStore, raw: bytes) -> None:
        """A manifest that does not parse: IntegrityError with the path and 'not valid JSON'."""
        publish_fake(store)
        path = store.paths("m").manifest(1)
        path.write_bytes(raw)
        with pytest.raises(IntegrityError, match="is not valid JSON") as info:
            store.read_manifest("m", 1)
        assert info.value.message.startswith(str(path))

    def test_a_manifest_of_another_version_is_an_integrity_error(
        self, store: RegistryStore
    ) -> None:
        """A folder copied to another number does not pass as that number."""
        publish_fake(store)
        paths = store.paths("m")
        shutil.copytree(paths.version(1), paths.version(2))
        with pytest.raises(IntegrityError) as info:
            store.read_manifest("m", 2)
        assert info.value.message == f"{paths.manifest(2)} does not describe version 2"

    @pytest.mark.parametrize("body", [[1], 1, "1", None, {"version": "1"}, {}])
    def test_a_manifest_that_is_not_an_object_for_this_version_is_refused(
        self, store: RegistryStore, body: object
    ) -> None:
        """Valid JSON that is not an object with version == n: IntegrityError."""
        publish_fake(store)
        store.paths("m").manifest(1).write_text(json.dumps(body))
        with pytest.raises(IntegrityError, match="does not describe version 1"):
            store.read_manifest("m", 1)

    @pytest.mark.parametrize("value", [True, 1.0])
    def test_a_version_that_is_not_an_integer_is_refused(
        self, store: RegistryStore, value: object
    ) -> None:
        """"version": true or 1.0 does not describe version 1."""
        publish_fake(store)
        store.paths("m").manifest(1).write_text(json.dumps({"version": value}))
        with pytest.raises(IntegrityError):
            store.read_manifest("m", 1)


class TestReadActive:
    def test_no_pointer_means_no_active_version(self, store: RegistryStore) -> None:
        """A model without ACTIVE has active version 0."""
        publish_fake(store, activate=False)
        assert store.read_active("m") == 0

    @pytest.mark.parametrize(("text", "number"), [("3\n", 3), ("3", 3), (" 12 \n", 12)])
    def test_reads_the_number_around_whitespace(
        self, store: RegistryStore, text: str, number: int
    ) -> None:
        """The pointer is one number; surrounding whitespace is ignored."""
        publish_fake(store)
        store.paths("m").active.write_text(text)
        assert store.read_active("m") == number

    @pytest.mark.parametrize("text", ["", "\n", "abc", "-1", "1.5", "v2", "1 2", "0x1", "0",
                                      "0007", "9" * 19])
    def test_garbage_is_an_integrity_error(self, store: RegistryStore, text: str) -> None:
        """Anything but digits: IntegrityError naming the path and 'not a version number'."""
        publish_fake(store)
        path = store.paths("m").active
        path.write_text(text)
        with pytest.raises(IntegrityError) as info:
            store.read_active("m")
        assert info.value.message == f"{path} holds {text.strip()!r}, not a version number"

    @pytest.mark.parametrize("raw", [b"\xff\xfe", b"\x80", "\u00b2".encode(), "\u0661".encode(),
                                     "1\u00a0".encode(), b"1\x00"])
    def test_any_garbage_bytes_are_an_integrity_error(
        self, store: RegistryStore, raw: bytes
    ) -> None:
        """Non-UTF-8 bytes or Unicode digits in ACTIVE are reported as IntegrityError too."""
        publish_fake(store)
        store.paths("m").active.write_bytes(raw)
        with pytest.raises(IntegrityError, match="not a version number"):
            store.read_active("m")

    def test_more_digits_than_int_parses_is_an_integrity_error(
        self, store: RegistryStore
    ) -> None:
        """A pointer of 5000 digits (past int()'s limit) is garbage, not a ValueError."""
        publish_fake(store)
        store.paths("m").active.write_text("9" * 5000)
        with pytest.raises(IntegrityError, match="not a version number"):
            store.read_active("m")

    def test_publish_over_an_undecodable_pointer_still_activates(
        self, store: RegistryStore
    ) -> None:
        """publish(activate=True) replaces a non-UTF-8 pointer, like any other garbage."""
        publish_fake(store)
        store.paths("m").active.write_bytes(b"\xff")
        assert publish_fake(store) == 2
        assert store.read_active("m") == 2

    def test_publish_over_a_garbage_pointer_replaces_it(self, store: RegistryStore) -> None:
        """publish(activate=True) treats an unreadable pointer as 'none' and logs previous 0."""
        publish_fake(store)
        store.paths("m").active.write_text("garbage")
        publish_fake(store)
        assert store.read_active("m") == 2
        assert store.read_events("m")[-1]["previous"] == 0


class TestReadEvents:
    def test_no_log_means_no_events(self, store: RegistryStore) -> None:
        """A model that never logged anything has an empty history."""
        assert store.read_events("m") == []

    def test_a_torn_last_line_is_skipped(self, store: RegistryStore) -> None:
        """A crash mid-append leaves a partial line; the complete events before it are kept."""
        publish_fake(store)
        fsio.append_line(store.paths("m").events, b'{"event": "activ')
        assert event_names(store) == ["published", "activated"]

    def test_lines_that_are_not_objects_are_skipped(self, store: RegistryStore) -> None:
        """JSON lines that are not objects (a number, a list) are ignored."""
        publish_fake(store)
        fsio.append_line(store.paths("m").events, b"42\n[1]\n\n")
        assert event_names(store) == ["published", "activated"]

    def test_the_event_after_a_torn_line_is_kept(self, store: RegistryStore) -> None:
        """After a crash mid-append, the next event logged is still read back."""
        publish_fake(store)
        publish_fake(store)
        fsio.append_line(store.paths("m").events, b'{"event": "activ')
        store.set_active("m", 1, event="rolled_back", reason="bad")
        assert event_names(store)[-1] == "rolled_back"
        assert store.previous_active("m", 1) == 2


class TestPreviousActive:
    def test_no_history_means_no_previous(self, store: RegistryStore) -> None:
        """A model with no activation events has no previous version."""
        publish_fake(store, activate=False)
        assert store.previous_active("m", 0) == 0

    def test_the_first_activation_has_no_previous(self, store: RegistryStore) -> None:
        """After one activation, the version before it is 0."""
        publish_fake(store)
        assert store.previous_active("m", 1) == 0

    def test_an_activation_records_the_version_it_replaced(self, store: RegistryStore) -> None:
        """After v1 then v2 were activated, the version before 2 is 1."""
        publish_fake(store)
        publish_fake(store)
        assert store.previous_active("m", 2) == 1

    def test_published_only_versions_do_not_count(self, store: RegistryStore) -> None:
        """Versions published without activation are not 'previously active'."""
        publish_fake(store)
        publish_fake(store, activate=False)
        publish_fake(store, activate=False)
        assert store.previous_active("m", 1) == 0

    def test_a_rollback_records_the_version_it_left(self, store: RegistryStore) -> None:
        """After rolling back from 2 to 1, the version before 1 is 2."""
        publish_fake(store)
        publish_fake(store)
        store.set_active("m", 1, event="rolled_back", reason="regression")
        assert store.previous_active("m", 1) == 2

    def test_promotions_count_as_activations(self, store: RegistryStore) -> None:
        """A 'promoted' event moves history like 'activated' does."""
        publish_fake(store)
        publish_fake(store, activate=False)
        store.set_active("m", 2, event="promoted")
        assert store.previous_active("m", 2) == 1

    def test_a_hand_edited_pointer_falls_back_to_the_last_logged_activation(
        self, store: RegistryStore
    ) -> None:
        """If ACTIVE was edited by hand to 1 after v3 was activated, the previous one is 3."""
        for _ in range(3):
            publish_fake(store)
        store.paths("m").active.write_text("1\n")
        assert store.previous_active("m", store.read_active("m")) == 3


class TestSetActive:
    def test_moves_the_pointer_logs_and_returns_the_previous(self, store: RegistryStore) -> None:
        """set_active writes ACTIVE, logs event, version, previous and reason."""
        publish_fake(store)
        publish_fake(store)
        assert store.set_active("m", 1, event="rolled_back", reason="bad metrics") == 2
        assert store.read_active("m") == 1
        last = store.read_events("m")[-1]
        assert {k: last[k] for k in ("event", "version", "previous", "reason")} == {
            "event": "rolled_back", "version": 1, "previous": 2, "reason": "bad metrics"}

    def test_a_matching_expected_active_is_accepted(self, store: RegistryStore) -> None:
        """expected_active equal to the live version lets the change through."""
        publish_fake(store)
        publish_fake(store)
        assert store.set_active("m", 1, event="rolled_back", expected_active=2) == 2
        assert store.read_active("m") == 1

    def test_a_stale_expected_active_fails_and_changes_nothing(
        self, store: RegistryStore
    ) -> None:
        """expected_active != the live version: FailedPrecondition, pointer and log untouched."""
        publish_fake(store)
        publish_fake(store)
        events_before = store.paths("m").events.read_bytes()
        with pytest.raises(FailedPrecondition) as info:
            store.set_active("m", 1, event="rolled_back", expected_active=1)
        assert type(info.value) is FailedPrecondition
        assert info.value.message == (
            "expected_active_version is 1 but version 2 of model 'm' is active")
        assert store.read_active("m") == 2
        assert store.paths("m").events.read_bytes() == events_before

    def test_an_unknown_version_is_not_found_and_changes_nothing(
        self, store: RegistryStore
    ) -> None:
        """Pointing at a version that does not exist: NotFound, pointer untouched."""
        publish_fake(store)
        with pytest.raises(NotFound, match=r"^version 7 of model 'm' not found$"):
            store.set_active("m", 7, event="rolled_back")
        assert store.read_active("m") == 1
        assert event_names(store) == ["published", "activated"]

    def test_an_unknown_model_is_not_found(self, store: RegistryStore) -> None:
        """A model without versions/ is NotFound, and nothing is created for it."""
        with pytest.raises(NotFound, match=r"^model 'ghost' not found$"):
            store.set_active("ghost", 1, event="rolled_back")
        assert not (store.root / "ghost").exists()


class TestStaging:
    def test_begin_staging_makes_an_empty_folder_with_a_held_lock(
        self, store: RegistryStore
    ) -> None:
        """The folder is under <model>/.staging and its lock cannot be taken by anyone else."""
        staging = store.begin_staging("m")
        assert staging.path.parent == store.paths("m").staging
        assert staging.path.is_dir() and os.listdir(staging.path) == []
        assert staging.lock_path == staging.path.with_name(staging.path.name + ".lock")
        assert staging.lock_fd is not None
        assert fsio.try_lock(staging.lock_path) is None
        staging.discard()

    def test_an_invalid_model_name_is_refused(self, store: RegistryStore) -> None:
        """begin_staging validates the name before creating anything."""
        with pytest.raises(InvalidArgument, match="is not a valid model name"):
            store.begin_staging("../escape")
        assert os.listdir(store.root) == []

    def test_discard_keeps_the_staging_folder_of_a_model_with_versions(
        self, store: RegistryStore
    ) -> None:
        """Only a model that has nothing else loses its .staging: others keep it, so a Train
        never has to create anything in the model folder itself."""
        publish_fake(store)
        store.begin_staging("m").discard()
        assert os.listdir(store.paths("m").staging) == []

    def test_discard_removes_folder_and_lock_and_is_idempotent(
        self, store: RegistryStore
    ) -> None:
        """discard deletes what was built and the lock file; a second call is harmless."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        staging.discard()
        staging.discard()
        assert not store.paths("m").root.exists()  # no versions: nothing left
        assert staging.lock_fd is None


class TestCleanStaleStaging:
    def test_a_live_builder_is_left_alone(self, store: RegistryStore) -> None:
        """A staging folder whose Staging is still open survives the sweep."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        assert store.clean_stale_staging() == 0
        assert (staging.path / "model.bin").exists()
        assert staging.lock_path.exists()
        assert publish_fake(store) == 1
        store.publish(staging, {"algorithm": "x"}, activate=False)
        assert store.version_numbers("m") == [1, 2]

    def test_a_dead_builders_folder_is_removed(self, store: RegistryStore) -> None:
        """Once the builder's lock is free, its folder and lock file go; the count says 1."""
        staging = store.begin_staging("m")
        (staging.path / "model.bin").write_bytes(b"w")
        _die(staging)
        assert store.clean_stale_staging() == 1
        assert not store.paths("m").root.exists()  # no versions: nothing left

    def test_sweeps_every_model_and_only_the_dead(self, store: RegistryStore) -> None:
        """Dead folders of several models go; a live one of any model stays."""
        dead = [store.begin_staging(name) for name in ("a", "b", "b")]
        live = store.begin_staging("b")
        for staging in dead:
            _die(staging)
        assert store.clean_stale_staging() == 3
        assert not store.paths("a").root.exists()  # no versions: nothing left
        assert sorted(os.listdir(store.paths("b").staging)) == sorted(
            [live.path.name, live.lock_path.name])
        live.discard()

    def test_a_folder_without_a_lock_file_is_removed(self, store: RegistryStore) -> None:
        """A staging folder whose lock file vanished counts as dead."""
        staging = store.begin_staging("m")
        _die(staging)
        staging.lock_path.unlink()
        assert store.clean_stale_staging() == 1
        assert not store.paths("m").root.exists()  # no versions: nothing left

    def test_an_orphan_lock_file_is_removed(self, store: RegistryStore) -> None:
        """A free lock file with no folder beside it is deleted (and not counted)."""
        staging = store.begin_staging("m")
        _die(staging)
        shutil.rmtree(staging.path)
        assert store.clean_stale_staging() == 0
        assert not store.paths("m").root.exists()  # no versions: nothing left

    def test_an_orphan_lock_that_is_held_stays(self, store: RegistryStore) -> None:
        """A held lock file whose folder is gone (a publish just renamed it) stays."""
        staging = store.begin_staging("m")
        shutil.rmtree(staging.path)
        assert store.clean_stale_staging() == 0
        assert staging.lock_path.exists()
        staging.discard()

    def test_a_worker_that_joined_keeps_the_folder_until_it_exits(
        self, store: RegistryStore
    ) -> None:
        """The daemon dies (its lock closes) while a worker that joined the builders lives:
        the sweep spares the folder, and removes it once the worker is gone."""
        staging = store.begin_staging("m")
        worker = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from modeld_server.registry.fsio import hold_builder_lock; "
             "print(hold_builder_lock(Path(sys.argv[1])) is not None, flush=True); "
             "sys.stdin.read()", str(staging.lock_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert worker.stdout is not None and worker.stdout.readline() == "True\n"
            _die(staging)
            assert store.clean_stale_staging() == 0
            assert staging.path.is_dir()
        finally:
            worker.communicate("", timeout=60)
        assert store.clean_stale_staging() == 1
        assert not store.paths("m").root.exists()  # no versions: nothing left

    def test_a_swept_folder_cannot_be_joined(self, store: RegistryStore) -> None:
        """A worker arriving after the sweep finds no lock to join (so it writes nothing)."""
        staging = store.begin_staging("m")
        lock_path = staging.lock_path
        _die(staging)
        assert store.clean_stale_staging() == 1
        assert fsio.hold_builder_lock(lock_path) is None

    def test_a_folder_being_swept_cannot_be_joined(self, store: RegistryStore) -> None:
        """While a sweeper holds the lock exclusively, joining fails instead of waiting."""
        staging = store.begin_staging("m")
        _die(staging)
        sweeper = fsio.try_lock(staging.lock_path)
        assert sweeper is not None
        try:
            assert fsio.hold_builder_lock(staging.lock_path) is None
        finally:
            os.close(sweeper)

    def test_ignores_stray_entries_in_the_root(self, store: RegistryStore) -> None:
        """Files and dot-folders in the registry root are not swept or crashed on."""
        (store.root / "README").write_text("hi")
        (store.root / ".trash" / ".staging" / "x").mkdir(parents=True)
        assert store.clean_stale_staging() == 0
        assert (store.root / ".trash" / ".staging" / "x").is_dir()

    def test_a_sweep_racing_begin_staging_spares_the_builder(
        self, store: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A sweep that runs between the lock file's creation and its flock kills no builder."""
        real_flock = fcntl.flock
        first_call = [True]

        def flock_after_a_sweep(fd: int, operation: int) -> None:
            if first_call[0]:  # the builder's own flock: a sweeper gets in first
                first_call[0] = False
                store.clean_stale_staging()
            real_flock(fd, operation)

        monkeypatch.setattr("modeld_server.registry.fsio.fcntl.flock", flock_after_a_sweep)
        staging = store.begin_staging("m")
        monkeypatch.setattr("modeld_server.registry.fsio.fcntl.flock", real_flock)
        store.clean_stale_staging()
        assert staging.path.is_dir()
        staging.discard()


class TestReading:
    def test_models_lists_folders_with_versions_sorted(self, store: RegistryStore) -> None:
        """models() lists folders holding versions/, sorted; dot-folders and others are not."""
        for name in ("zeta", "Alpha", "mid"):
            publish_fake(store, name)
        (store.root / "empty").mkdir()
        (store.root / ".hidden" / "versions").mkdir(parents=True)
        (store.root / "file").write_text("x")
        store.begin_staging("only-staging").discard()
        assert store.models() == ["Alpha", "mid", "zeta"]

    def test_models_skips_folders_whose_name_is_not_a_model_name(
        self, store: RegistryStore
    ) -> None:
        """A copied 'spam copy' folder holding versions/ is not listed; 'spam' still is."""
        publish_fake(store, "spam")
        shutil.copytree(store.root / "spam", store.root / "spam copy")
        (store.root / ("x" * 65) / "versions").mkdir(parents=True)
        assert store.models() == ["spam"]

    def test_version_numbers_ignore_other_entries_and_sort_numerically(
        self, store: RegistryStore
    ) -> None:
        """Only positive decimal folder names count, in numeric order (10 after 9)."""
        versions = store.paths("m").versions
        for name in ("10", "9", "1", "0", "01", "tmp", ".x"):
            (versions / name).mkdir(parents=True)
        assert store.version_numbers("m") == [1, 9, 10]

    def test_version_numbers_of_an_unknown_model_are_empty(self, store: RegistryStore) -> None:
        """A model that does not exist has no versions (not an error)."""
        assert store.version_numbers("ghost") == []

    def test_require_model_refuses_unknown_and_invalid_names(self, store: RegistryStore) -> None:
        """require_model: NotFound for a missing model, InvalidArgument for a bad name."""
        publish_fake(store)
        assert store.require_model("m") == store.paths("m")
        with pytest.raises(NotFound, match=r"^model 'ghost' not found$"):
            store.require_model("ghost")
        with pytest.raises(InvalidArgument):
            store.require_model("..")
