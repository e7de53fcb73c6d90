"""engine=dask's data side against the local engine on the same files: malformed CSV
lines dropped and counted, validation.drop_duplicates, the dataset's sha256 for
freshness. A real distributed.LocalCluster of 2 worker processes (test_train_dask.py's
fixtures); every comparison is exact. Every wait polls with a deadline.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon, wait_job
from tests.integration.test_train_dask import cluster  # noqa: F401

# A LocalCluster per module and minutes of training: `make test-dask` (CI runs it).
pytestmark = pytest.mark.dask

distributed = pytest.importorskip("distributed")


@pytest.fixture
def on_dask(tmp_path: Path, datasets: Path, cluster: distributed.LocalCluster  # noqa: F811
            ) -> Iterator[LiveDaemon]:
    """A daemon given the test's cluster with --dask-scheduler."""
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, dask_scheduler=cluster.scheduler_address)
    yield live
    live.stop()


def write_csv_glob(folder: Path, files: int = 3) -> list[Path]:
    """spambase's rows in order, cut into `files` CSV files named in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(SPAMBASE)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        paths.append(folder / f"2026-0{i + 1}.csv")
        frame.iloc[rows].to_csv(paths[-1], index=False)
    return paths


def spoil(path: Path, edits: dict[int, str]) -> None:
    """Replaces lines of a text file (1-based line numbers, the header is line 1)."""
    lines = path.read_text().splitlines()
    for number, text in edits.items():
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def both(live: LiveDaemon, path: str, target: str = "is_spam", drop_columns: tuple[str, ...]
         | list[str] = (), **fields: object) -> tuple[pb.Job, pb.Job]:
    """The same request with engine dask, then engine local: the two final jobs."""
    jobs = []
    for engine in ("dask", "local"):
        request = pb.TrainRequest(model=f"m-{engine}", algorithm="xgboost", engine=engine,
                                  cv_folds=2, params={"n_estimators": "5"},
                                  dataset=pb.Dataset(path=path, target=target,
                                                     drop_columns=list(drop_columns)),
                                  **fields)  # type: ignore[arg-type]
        jobs.append(wait_job(live.stub, live.stub.Train(request).id))
    return jobs[0], jobs[1]


def manifest(live: LiveDaemon, job: pb.Job) -> dict[str, object]:
    model = "m-dask" if job.request.engine == "dask" else "m-local"
    got: dict[str, object] = json.loads(live.stub.GetVersion(pb.GetVersionRequest(
        model=model, version=job.version)).manifest_json)
    return got


def reports(live: LiveDaemon, jobs: tuple[pb.Job, pb.Job]) -> tuple[dict[str, object], ...]:
    for job in jobs:
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    return tuple(manifest(live, job) for job in jobs)


class TestMalformedCsvOnDask:
    def test_bad_lines_of_a_csv_glob_are_dropped_and_counted_as_on_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """A word in a number column (inside the first rows and far down), a line with a
        field too many and one with a field too few, in three files: both engines drop
        the same rows and write the same validation report and row counts."""
        paths = write_csv_glob(on_dask.data_root / "csv")
        width = len(paths[0].read_text().splitlines()[0].split(","))
        spoil(paths[0], {3: "oops" + ",0" * (width - 1), 1200: "0," * width + "0"})
        spoil(paths[1], {5: ",".join(["1"] * (width - 2))})
        spoil(paths[2], {1500: "0.5,n/a?" + ",0" * (width - 2)})
        dask, local = reports(on_dask, both(on_dask, "csv/*.csv"))
        assert dask["validation"]["malformed"] == {
            "count": 4, "action": "dropped", "wrong_field_count": 2, "unparsable_numbers": 2,
            "first_lines": ["2026-01.csv:1200", "2026-01.csv:3", "2026-02.csv:5",
                            "2026-03.csv:1500"]}
        assert dask["validation"] == local["validation"]
        assert dask["validation"]["rows_read"] == 4601
        assert dask["validation"]["rows_used"] == 4597
        for key in ("rows", "rows_read", "columns", "sha256"):
            assert dask["dataset"][key] == local["dataset"][key], key
        assert dask["features"] == local["features"]

    def test_past_max_malformed_fraction_both_engines_fail_with_the_same_words(
            self, on_dask: LiveDaemon) -> None:
        """A file whose every line has a field too many: a third of the rows."""
        paths = write_csv_glob(on_dask.data_root / "csv")
        lines = paths[2].read_text().splitlines()
        paths[2].write_text("\n".join(lines[:1] + [f"{line},1" for line in lines[1:]]) + "\n")
        dask, local = both(on_dask, "csv/*.csv")
        assert dask.state == local.state == pb.JOB_STATE_FAILED
        assert dask.error == local.error == (
            "FailedPrecondition: 1533 of 4601 rows are malformed (first at lines "
            "['2026-03.csv:2', '2026-03.csv:3', '2026-03.csv:4', '2026-03.csv:5', "
            "'2026-03.csv:6', '2026-03.csv:7', '2026-03.csv:8', '2026-03.csv:9', "
            "'2026-03.csv:10', '2026-03.csv:11']), more than max_malformed_fraction=0.01")

    def test_a_file_of_malformed_lines_within_the_fraction_trains_as_locally(
            self, on_dask: LiveDaemon) -> None:
        """The same file under a fraction that allows it: no rows from it, the others'
        types unchanged (a file without rows says nothing about the columns' types)."""
        paths = write_csv_glob(on_dask.data_root / "csv")
        lines = paths[2].read_text().splitlines()
        paths[2].write_text("\n".join(lines[:1] + [f"{line},1" for line in lines[1:]]) + "\n")
        dask, local = reports(on_dask, both(
            on_dask, "csv/*.csv", validation=pb.ValidationOptions(max_malformed_fraction=0.5)))
        assert dask["validation"] == local["validation"]
        assert dask["validation"]["rows_used"] == 4601 - 1533
        assert dask["schema"] == local["schema"]

    def test_one_csv_file_names_lines_by_number_as_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """One file: lines are numbers (as the local engine's one-file reader names them),
        sorted as numbers; a text column of few numbers stays text on both engines."""
        rows = 3000
        lines = ["a,b,kind,y"] + [f"{i % 7},{i % 5}.5,{'xyz'[i % 3] if i % 4 else i},{i % 2}"
                                  for i in range(rows)]
        lines[3] = "oops,1.5,x,1"  # file line 4, inside the first rows Train samples
        lines[2500] = "2,?,y,0"  # file line 2501
        lines[2600] = "2,1.5,y"  # a field too few
        (on_dask.data_root / "late.csv").write_text("\n".join(lines) + "\n")
        dask, local = reports(on_dask, both(on_dask, "late.csv", target="y",
                                            task=pb.TASK_CLASSIFICATION))
        assert dask["validation"]["malformed"] == {
            "count": 3, "first_lines": [4, 2501, 2601], "action": "dropped",
            "wrong_field_count": 1, "unparsable_numbers": 2}
        assert dask["validation"] == local["validation"]
        assert dask["schema"] == local["schema"]
        assert dask["schema"]["categorical"] == ["kind"]

    def test_a_jsonl_record_with_text_for_a_number_is_dropped_as_locally(
            self, on_dask: LiveDaemon) -> None:
        """JSON Lines take the same path: a string where the column holds numbers."""
        folder = on_dask.data_root / "jsonl"
        folder.mkdir()
        frame = pd.read_csv(SPAMBASE)
        for i, rows in enumerate(np.array_split(np.arange(len(frame)), 2)):
            frame.iloc[rows].to_json(folder / f"part-{i}.jsonl", orient="records", lines=True)
        spoil(folder / "part-1.jsonl", {7: '{"word_freq_make": "many", "is_spam": 1}'})
        dask, local = reports(on_dask, both(on_dask, "jsonl/*.jsonl"))
        assert dask["validation"]["malformed"]["first_lines"] == ["part-1.jsonl:7"]
        assert dask["validation"] == local["validation"]

    def test_a_word_past_the_sample_is_dropped_and_counted_as_locally(
            self, on_dask: LiveDaemon) -> None:
        """Dask's read_csv would infer the types from the first 256 KB and fail on a word
        in a number column further down: the types come from every file's counts, and the
        row is dropped and counted as the local engine does."""
        rows = 800_000  # about 6.4 MB: past the 4 MiB sample
        lines = ["a,b,y"] + [f"{i % 7},{i % 5}.5,{i % 2}" for i in range(rows)]
        lines[-1] = "oops,1.5,1"
        (on_dask.data_root / "late.csv").write_text("\n".join(lines) + "\n")
        dask, local = reports(on_dask, both(on_dask, "late.csv", target="y",
                                            task=pb.TASK_CLASSIFICATION))
        assert dask["validation"]["malformed"] == {
            "count": 1, "first_lines": [rows + 1], "action": "dropped",
            "wrong_field_count": 0, "unparsable_numbers": 1}
        assert dask["validation"] == local["validation"]


def write_duplicated_glob(folder: Path) -> pd.DataFrame:
    """spambase in 3 CSV files, with repeats across files: the first file's last row
    starts the second file, the first file's first row ends the last file, and a row
    of the second file is repeated in the third. Returns the rows in dataset order."""
    frame = pd.read_csv(SPAMBASE)
    parts = [frame.iloc[rows] for rows in np.array_split(np.arange(len(frame)), 3)]
    parts[1] = pd.concat([parts[0].tail(1), parts[1]])
    parts[2] = pd.concat([parts[2], parts[1].iloc[[10, 20]], parts[0].head(1)])
    folder.mkdir(parents=True)
    for i, part in enumerate(parts):
        part.to_csv(folder / f"2026-0{i + 1}.csv", index=False)
    return pd.concat(parts, ignore_index=True)


class TestDropDuplicatesOnDask:
    def test_the_same_rows_are_dropped_and_reported_as_on_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """Repeats within a file and across files (the last file repeating the first
        file's first row): the same count, report and rows used on both engines."""
        rows = write_duplicated_glob(on_dask.data_root / "dup")
        dask_job, local_job = both(on_dask, "dup/*.csv",
                                   validation=pb.ValidationOptions(drop_duplicates=True))
        dask, local = reports(on_dask, (dask_job, local_job))
        count = int(rows.duplicated().sum())
        assert dask["validation"]["duplicates"] == {"count": count, "action": "dropped"}
        assert f"{count} exact duplicate rows dropped" in dask["validation"]["warnings"]
        assert dask["validation"] == local["validation"]
        assert dask["dataset"]["rows"] == local["dataset"]["rows"] == len(rows) - count
        assert sum(dask["engine"]["fold_sizes"]) == len(rows) - count
        assert dask["validation"]["target"] == local["validation"]["target"]

    def test_min_rows_counts_the_rows_left_as_locally(self, on_dask: LiveDaemon) -> None:
        rows = write_duplicated_glob(on_dask.data_root / "dup")
        left = len(rows) - int(rows.duplicated().sum())
        dask, local = both(on_dask, "dup/*.csv", validation=pb.ValidationOptions(
            drop_duplicates=True, min_rows=left + 1))
        assert dask.error == local.error == (
            f"FailedPrecondition: {left} usable rows, fewer than min_rows={left + 1}")


class TestDatasetSha256OnDask:
    def test_a_dask_version_is_fresh_until_a_file_changes(self, on_dask: LiveDaemon) -> None:
        """The manifest records the local engine's digest (hashed on the workers, a task a
        file); GetStatus's dataset check then works as for a local version."""
        paths = write_csv_glob(on_dask.data_root / "csv")
        dask, local = reports(on_dask, both(on_dask, "csv/*.csv"))
        assert dask["dataset"]["sha256"] == local["dataset"]["sha256"]
        assert len(dask["dataset"]["sha256"]) == 64

        def warnings() -> list[pb.StatusWarning]:
            return list(on_dask.stub.GetStatus(pb.GetStatusRequest(
                model="m-dask")).models[0].warnings)

        warnings()
        on_dask.runtime.service.freshness.hashes.settle()
        assert warnings() == []
        with paths[1].open("a") as out:
            out.write(paths[1].read_text().splitlines()[1] + "\n")
        deadline = time.monotonic() + 60
        while not (found := warnings()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w.kind for w in found] == ["dataset_changed"]
        assert found[0].message.startswith("dataset 'csv/*.csv' changed on disk since "
                                           "training (sha256 ")

    def test_a_file_changed_during_the_job_fails_it(self, on_dask: LiveDaemon) -> None:
        """Appended to while the folds train (after the job hashed it): the job's reads
        may have seen two versions of the file, so nothing is published."""
        paths = write_csv_glob(on_dask.data_root / "csv")
        job = on_dask.stub.Train(pb.TrainRequest(
            model="m-dask", algorithm="xgboost", engine="dask", cv_folds=3,
            params={"n_estimators": "200"},
            dataset=pb.Dataset(path="csv/*.csv", target="is_spam")))
        for event in on_dask.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=300):
            if event.job.phase == "cross_validation":
                break
        with paths[1].open("a") as out:
            out.write(paths[1].read_text().splitlines()[1] + "\n")
        done = wait_job(on_dask.stub, job.id)
        assert done.state == pb.JOB_STATE_FAILED
        assert done.error == (
            "FailedPrecondition: dataset.path 'csv/*.csv': '2026-02.csv' changed during the "
            "job (its size or modification time is not what it was when the job read it): "
            "train again once the data is written")


class TestIsolationForestOnDask:
    def test_folds_scored_on_eval_label_equal_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """A detector's folds and final fit are Dask tasks on one worker each: the same
        per-fold metrics and the same anomaly facts as the local engine, exactly."""
        jobs = []
        for engine in ("dask", "local"):
            jobs.append(wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model=f"m-{engine}", algorithm="isolation_forest", engine=engine,
                dataset=pb.Dataset(path="anomalies.csv", eval_label="is_outlier"))).id))
        dask, local = reports(on_dask, (jobs[0], jobs[1]))
        assert set(jobs[0].metrics) == set(jobs[1].metrics) and jobs[0].metrics
        for name in jobs[1].metrics:
            assert list(jobs[0].metrics[name].folds) == list(jobs[1].metrics[name].folds), name
        assert dask["anomaly"] == local["anomaly"]
        assert dask["validation"] == local["validation"]
        assert dask["oof"] == local["oof"] and dask["oof"] is not None
        assert dask["engine"]["name"] == "dask" and len(dask["engine"]["fold_workers"]) == 5
        assert "is_outlier" not in dask["features"]

    def test_without_eval_label_one_fit_and_the_same_threshold(
            self, on_dask: LiveDaemon) -> None:
        jobs = []
        for engine in ("dask", "local"):
            jobs.append(wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model=f"m-{engine}", algorithm="isolation_forest", engine=engine,
                dataset=pb.Dataset(path="anomalies.csv",
                                   drop_columns=["is_outlier"]))).id))
        dask, local = reports(on_dask, (jobs[0], jobs[1]))
        assert dict(jobs[0].metrics) == dict(jobs[1].metrics) == {}
        assert dask["anomaly"] == local["anomaly"]
        assert dask["profile"] == local["profile"]


class TestEveryColumnProfiled:
    def test_dropped_columns_count_as_on_the_local_engine(self, on_dask: LiveDaemon) -> None:
        """Missing values, constant columns and duplicates cover every column of the
        files, also those the request drops: an id column makes repeats distinct."""
        base = pd.read_csv(SPAMBASE).iloc[::8]  # 576 rows of both classes
        frame = pd.concat([base, base.head(20)], ignore_index=True)
        frame.insert(0, "id", np.arange(len(frame)) % len(base))  # the last 20 rows repeat
        frame["note"] = np.where(frame["id"] % 50 == 0, None, "same")
        frame.to_csv(on_dask.data_root / "ids.csv", index=False)
        dask, local = reports(on_dask, both(on_dask, "ids.csv",
                                            drop_columns=["id", "note"]))
        assert dask["validation"]["duplicates"]["count"] == 20
        assert dask["validation"]["missing_values"] == {"note": int(frame["note"].isna().sum())}
        assert dask["validation"] == local["validation"]


class TestEvalLabelWithXGBoostOnDask:
    def test_the_column_is_no_feature_and_the_report_is_the_local_engines(
            self, on_dask: LiveDaemon) -> None:
        frame = pd.read_csv(SPAMBASE)
        frame["audited"] = np.arange(len(frame)) % 3 == 0
        frame.to_csv(on_dask.data_root / "audited.csv", index=False)
        jobs = []
        for engine in ("dask", "local"):
            jobs.append(wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model=f"m-{engine}", algorithm="xgboost", engine=engine, cv_folds=2,
                params={"n_estimators": "5"}, dataset=pb.Dataset(
                    path="audited.csv", target="is_spam", eval_label="audited"))).id))
        dask, local = reports(on_dask, (jobs[0], jobs[1]))
        assert "audited" not in dask["features"]
        assert dask["features"] == local["features"]
        assert dask["validation"] == local["validation"]
