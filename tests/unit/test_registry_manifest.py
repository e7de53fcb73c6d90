"""The typed manifest reads every manifest ever written, and refuses one from the future."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.errors import FailedPrecondition, IntegrityError
from modeld_server.registry.index import RegistryIndex
from modeld_server.registry.manifest import MANIFEST_SCHEMA, Manifest, VersionSummary
from modeld_server.registry.store import RegistryStore
from modeld_server.rpc import convert

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "manifests").glob("*.json"))


def install(root: Path, fixture: Path, model: str = "spam") -> RegistryStore:
    """A registry holding `fixture` as version 1 of `model` (artifacts absent)."""
    store = RegistryStore(root)
    folder = store.paths(model).version(1)
    folder.mkdir(parents=True)
    shutil.copy(fixture, folder / "manifest.json")
    return store


def test_there_is_a_fixture_of_the_current_schema() -> None:
    """Bumping MANIFEST_SCHEMA without keeping a manifest of the new shape fails here."""
    schemas = {json.loads(f.read_text())["manifest_schema"] for f in FIXTURES}
    assert schemas == set(range(1, MANIFEST_SCHEMA + 1))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
class TestEveryFixture:
    def test_it_loads_from_a_registry(self, tmp_path: Path, fixture: Path) -> None:
        """read_manifest types it, and every field matches the file."""
        data = json.loads(fixture.read_text())
        manifest = install(tmp_path, fixture).read_manifest("spam", 1)
        assert manifest.version == 1 and manifest.model == "spam"
        assert manifest.task == data["task"] and manifest.algorithm == data["algorithm"]
        assert manifest.features == tuple(data["features"])
        assert manifest.classes == tuple(data["classes"])
        assert manifest.schema == data["schema"] and manifest.format == data["format"]
        assert manifest.artifacts == data["artifacts"]
        assert manifest.raw == data

    def test_it_writes_back_byte_for_byte(self, fixture: Path) -> None:
        """to_json gives the same keys and values, so re-serialising changes no byte."""
        text = fixture.read_text()
        again = Manifest.from_json(json.loads(text)).to_json()
        assert json.dumps(again, indent=2, sort_keys=True) + "\n" == text

    def test_the_index_and_the_edge_show_it(self, tmp_path: Path, fixture: Path) -> None:
        """ListVersions' summary and GetVersion's message come out of it whole."""
        data = json.loads(fixture.read_text())
        index = RegistryIndex(install(tmp_path, fixture))
        index.refresh()
        summary = index.entry("spam").summaries[1]
        message = convert.version_to_pb("spam", summary, 1, {},
                                        index.store.read_manifest("spam", 1))
        assert message.task == pb.TASK_CLASSIFICATION
        assert message.state == pb.VERSION_STATE_ACTIVE
        assert list(message.classes) == [str(c) for c in data["classes"]]
        assert message.training_seconds == data["timings"]["total_seconds"]
        assert json.loads(message.manifest_json) == data


class TestSchemaVersion:
    def test_a_newer_schema_is_refused_naming_both(self, tmp_path: Path) -> None:
        """A manifest from a newer daemon is FailedPrecondition: upgrade, it says."""
        store = install(tmp_path, FIXTURES[-1])
        path = store.paths("spam").manifest(1)
        path.write_text(json.dumps(dict(json.loads(path.read_text()),
                                        manifest_schema=MANIFEST_SCHEMA + 1)))
        with pytest.raises(FailedPrecondition) as info:
            store.read_manifest("spam", 1)
        assert info.value.message == (
            f"{path}: manifest schema {MANIFEST_SCHEMA + 1} is newer than this daemon reads "
            f"({MANIFEST_SCHEMA}): upgrade modeld")

    def test_the_index_skips_a_newer_version_and_keeps_the_others(self, tmp_path: Path) -> None:
        """One version from the future does not hide the rest of the model."""
        store = install(tmp_path, FIXTURES[-1])
        folder = store.paths("spam").version(2)
        folder.mkdir()
        body = dict(json.loads(FIXTURES[-1].read_text()), version=2,
                    manifest_schema=MANIFEST_SCHEMA + 1)
        (folder / "manifest.json").write_text(json.dumps(body))
        index = RegistryIndex(store)
        index.refresh()
        assert index.entry("spam").versions == [1]

    def test_a_manifest_without_a_schema_reads_as_the_first(self) -> None:
        """Hand-made manifests (tests, tools) name no schema: they read as schema 1."""
        assert Manifest.from_json({"version": 3}).manifest_schema == 1


class TestTolerance:
    def test_unknown_keys_are_kept_and_written_back(self) -> None:
        """A key a newer daemon added survives a read and a write by this one."""
        manifest = Manifest.from_json({"version": 1, "task": "regression",
                                       "explainer": {"kind": "shap"}})
        assert manifest.raw["explainer"] == {"kind": "shap"}
        assert manifest.to_json() == {"version": 1, "task": "regression",
                                      "explainer": {"kind": "shap"}}

    def test_missing_keys_take_their_defaults(self) -> None:
        """An older writer's manifest lacks keys: they read as empty, not as errors."""
        manifest = Manifest.from_json({"version": 1})
        assert (manifest.state, manifest.gate, manifest.seed, manifest.classes) == (
            "available", None, None, ())
        assert not manifest.rejected

    @pytest.mark.parametrize(("key", "value", "found", "expected"), [
        ("features", "a,b", "a string", "an array"),
        ("cv_folds", "5", "a string", "an integer or null"),
        ("seed", True, "a boolean", "an integer or null"),
        ("gate", [], "an array", "an object or null"),
        ("task", None, "null", "a string"),
    ])
    def test_a_known_key_of_the_wrong_type_is_an_integrity_error(
        self, key: str, value: object, found: str, expected: str
    ) -> None:
        """The message names the source, the key, what it holds and what it should."""
        with pytest.raises(IntegrityError) as info:
            Manifest.from_json({"version": 1, key: value}, "m/versions/1/manifest.json")
        assert info.value.message == (
            f"m/versions/1/manifest.json: key {key!r} is {found}, expected {expected}")

    def test_the_summary_is_the_manifest_less_what_stays_on_disk(self) -> None:
        """The index's summary carries the listing fields, nothing per-file."""
        data = json.loads(FIXTURES[-1].read_text())
        summary = Manifest.from_json(data).summary
        assert summary == VersionSummary.from_json(data)
        assert set(summary.to_json()) == {
            "version", "algorithm", "task", "params", "metrics", "created_at", "job_id",
            "dataset", "features", "classes", "confusion_matrix", "timings", "state", "gate"}
