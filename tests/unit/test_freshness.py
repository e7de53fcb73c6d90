"""Freshness warnings: too old (by an injected clock), too few rows, dataset changed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modeld_server.errors import InvalidArgument
from modeld_server.freshness import Freshness, StatusWarning, format_seconds
from modeld_server.registry.manifest import VersionSummary
from modeld_server.training.gate import Policy
from tests.unit._registry_helpers import count_sha256_reads

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86400.0
CSV = b"a,b\n1,2\n3,4\n"


def summary(rows: int = 500, sha256: str = "", path: str = "d.csv") -> VersionSummary:
    """The index's summary of an active version, as the manifest records it."""
    return VersionSummary.from_json({
        "version": 1, "created_at": CREATED.isoformat(),
        "dataset": {"path": path, "sha256": sha256, "rows": rows}})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Freshness]:
    (tmp_path / "d.csv").write_bytes(CSV)
    checker = Freshness(tmp_path, Clock(CREATED.timestamp()))
    yield checker
    checker.close()


class TestMaxAge:
    def test_older_than_max_age_warns_and_not_before(self, fresh: Freshness) -> None:
        policy = Policy(max_age_seconds=30 * DAY)
        clock = fresh.clock
        assert isinstance(clock, Clock)
        clock.now = CREATED.timestamp() + 30 * DAY
        assert fresh.warnings(policy, summary()) == []
        clock.now += 1.5 * DAY
        assert fresh.warnings(policy, summary()) == [StatusWarning(
            "max_age", "trained 31.5d ago, older than the policy's max_age 30.0d")]

    def test_no_max_age_never_warns(self, fresh: Freshness) -> None:
        clock = fresh.clock
        assert isinstance(clock, Clock)
        clock.now = CREATED.timestamp() + 3650 * DAY
        assert fresh.warnings(Policy(), summary()) == []


class TestMinTrainingRows:
    def test_fewer_rows_than_the_minimum_warns(self, fresh: Freshness) -> None:
        policy = Policy(min_training_rows=1000)
        assert fresh.warnings(policy, summary(rows=999)) == [StatusWarning(
            "min_training_rows", "trained on 999 rows, fewer than the policy's "
                                 "min_training_rows 1000")]
        assert fresh.warnings(policy, summary(rows=1000)) == []

    def test_no_active_version_has_no_warnings(self, fresh: Freshness) -> None:
        assert fresh.warnings(Policy(min_training_rows=10**9, max_age_seconds=1), None) == []


class TestDatasetChanged:
    SHA = hashlib.sha256(CSV).hexdigest()

    def test_unchanged_dataset_does_not_warn(self, fresh: Freshness) -> None:
        assert fresh.warnings(Policy(), summary(sha256=self.SHA)) == []
        fresh.hashes.settle()
        assert fresh.warnings(Policy(), summary(sha256=self.SHA)) == []

    def test_a_changed_file_warns_once_its_hash_is_known(self, fresh: Freshness,
                                                         tmp_path: Path) -> None:
        """The first call after the change only starts the hash (GetStatus never waits)."""
        (tmp_path / "d.csv").write_bytes(CSV + b"5,6\n")
        now = hashlib.sha256(CSV + b"5,6\n").hexdigest()
        assert fresh.warnings(Policy(), summary(sha256=self.SHA)) == []
        fresh.hashes.settle()
        assert fresh.warnings(Policy(), summary(sha256=self.SHA)) == [StatusWarning(
            "dataset_changed", f"dataset 'd.csv' changed on disk since training "
                               f"(sha256 {now[:12]}, trained on {self.SHA[:12]})")]

    def test_a_deleted_file_warns(self, fresh: Freshness, tmp_path: Path) -> None:
        (tmp_path / "d.csv").unlink()
        assert fresh.warnings(Policy(), summary(sha256=self.SHA)) == [StatusWarning(
            "dataset_changed", "dataset 'd.csv' is no longer on disk")]

    def test_hashed_once_per_file_state(self, fresh: Freshness, monkeypatch: Any) -> None:
        """Repeated GetStatus calls cost a stat each: the hash is remembered by stamp."""
        calls = count_sha256_reads(monkeypatch)
        for _ in range(5):
            fresh.warnings(Policy(), summary(sha256=self.SHA))
            fresh.hashes.settle()
        assert len(calls) == 1

    def test_a_glob_dataset_is_compared_over_all_its_files(self, fresh: Freshness,
                                                          tmp_path: Path) -> None:
        """A glob: no warning while its files are as trained (multifile.sha256, the
        manifest's digest); a changed file warns, a glob matching nothing is gone."""
        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (tmp_path / "p-1.csv").write_bytes(CSV)
        (tmp_path / "p-2.csv").write_bytes(CSV)
        trained = multifile.sha256(resolve_files(tmp_path, "p-*.csv"))
        assert fresh.warnings(Policy(), summary(sha256=trained, path="p-*.csv")) == []
        fresh.hashes.settle()
        assert fresh.warnings(Policy(), summary(sha256=trained, path="p-*.csv")) == []
        (tmp_path / "p-3.csv").write_bytes(CSV)
        now = multifile.sha256(resolve_files(tmp_path, "p-*.csv"))
        fresh.warnings(Policy(), summary(sha256=trained, path="p-*.csv"))
        fresh.hashes.settle()
        assert fresh.warnings(Policy(), summary(sha256=trained, path="p-*.csv")) == [
            StatusWarning("dataset_changed", f"dataset 'p-*.csv' changed on disk since "
                          f"training (sha256 {now[:12]}, trained on {trained[:12]})")]
        for name in ("p-1.csv", "p-2.csv", "p-3.csv"):
            (tmp_path / name).unlink()
        assert fresh.warnings(Policy(), summary(sha256=trained, path="p-*.csv")) == [
            StatusWarning("dataset_changed", "dataset 'p-*.csv' is no longer on disk")]

    def test_a_parquet_folder_is_compared_over_its_files(self, fresh: Freshness,
                                                         tmp_path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (tmp_path / "f" / "k=1").mkdir(parents=True)
        pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "f" / "k=1" / "0.parquet")
        trained = multifile.sha256(resolve_files(tmp_path, "f"))
        fresh.warnings(Policy(), summary(sha256=trained, path="f"))
        fresh.hashes.settle()
        assert fresh.warnings(Policy(), summary(sha256=trained, path="f")) == []

    def test_a_manifest_without_a_hash_is_not_compared(self, fresh: Freshness,
                                                       tmp_path: Path) -> None:
        (tmp_path / "d.csv").unlink()
        assert fresh.warnings(Policy(), summary(sha256="")) == []


class TestPolicyFields:
    def test_round_trip_through_json(self) -> None:
        policy = Policy(max_age_seconds=7 * DAY, min_training_rows=100)
        assert Policy.from_json(policy.to_json()) == policy

    def test_a_policy_without_freshness_reads_and_writes_as_before(self) -> None:
        assert Policy().to_json() == {"primary_metric": "", "tolerance": 0.01,
                                      "thresholds": [], "disabled": False}

    @pytest.mark.parametrize(("policy", "message"), [
        (Policy(max_age_seconds=-1.0), "policy.max_age must be between 0 and 3153600000 "
                                       "seconds (100 years), got -1 seconds"),
        (Policy(max_age_seconds=float("nan")), "policy.max_age must be between 0 and "
                                               "3153600000 seconds (100 years), got nan seconds"),
        (Policy(min_training_rows=-5), "policy.min_training_rows must be >= 0, got -5"),
    ])
    def test_bad_values_are_invalid_argument(self, policy: Policy, message: str) -> None:
        with pytest.raises(InvalidArgument) as err:
            policy.validated()
        assert err.value.message == message


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (42, 90, 5.5 * 3600, 31 * DAY)] == [
        "42.0s", "1.5m", "5.5h", "31.0d"]
