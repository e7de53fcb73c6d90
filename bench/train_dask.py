"""engine=local against engine=dask on a local cluster of 1 and 2 workers, through a live daemon.

A synthetic binary classification dataset (default 200,000 rows x 20 float columns; the
issue's size is `--rows 2000000 --columns 50`) is written as Parquet partitions in a
temporary folder (`synth/part-NNN.parquet`, what engine=dask reads) and once more as one
Parquet file (`synth.parquet`: engine=local takes a file, not a folder). Each engine gets
a fresh daemon (`--dask-local N` for Dask, which starts the cluster on the first job), so
each peak RSS (VmHWM of the daemon process, read from /proc) is that engine's own. Printed
per run: wall time (Train call to the final WatchJob event), rows/s (rows x (folds + 1)
fits / wall), the daemon's peak RSS, the job process's (the manifest's
resources.peak_rss_mib: for engine=local the process that holds the rows and fits), the
peak RSS of the local cluster's own process (its scheduler and nannies, outside the
daemon), each Dask worker process's peak RSS, and the 1-minute load average after the run.

The workers' peaks are asked of the workers themselves once the job has ended: the bench
connects a client to the scheduler the daemon logged (`dask_local_cluster_started`) and
runs resource.getrusage(RUSAGE_SELF).ru_maxrss in each worker process (client.run): the
kernel's high-water mark of its resident memory since it started, so no sampling can miss
a peak. A worker the nanny restarted (memory limit, crash) would show only its new life's
peak; the workers' pids are printed to tell.

    .venv/bin/python bench/train_dask.py            # --rows 200000 --columns 20 --folds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import git_commit, load_note, rss_mib, running_daemon, scratch_folder, train_and_wait

from modeld.v1 import model_manager_pb2 as pb


def write_dataset(data: Path, rows: int, columns: int, partitions: int, seed: int) -> None:
    """Features ~ N(0, 1); the label is a noisy threshold of a fixed linear mix of them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, columns)).astype(np.float32)
    weights = rng.standard_normal(columns)
    y = (x @ weights + rng.standard_normal(rows) * 0.5 > 0).astype(np.int8)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(columns)]).assign(label=y)
    folder = data / "synth"
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(rows), partitions)):
        frame.iloc[part].to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    frame.to_parquet(data / "synth.parquet", index=False)


def cluster_started(log: Path) -> dict[str, Any]:
    """The daemon's dask_local_cluster_started log line ({} if none): the scheduler's
    address and the pid of the cluster's own process (scheduler and nannies)."""
    found: dict[str, Any] = {}
    for line in log.read_text().splitlines():
        if '"dask_local_cluster_started"' in line:
            found = json.loads(line)
    return found


def scheduler_address(log: Path) -> str:
    """The address of the local cluster the daemon started ('' if none)."""
    return str(cluster_started(log).get("scheduler", ""))


def cluster_peak(log: Path) -> str:
    """The peak RSS in MiB of the cluster's own process ('-' without a cluster)."""
    pid = cluster_started(log).get("pid")
    if pid is None:
        return "-"
    _, peak = rss_mib(int(pid))
    return f"{peak:.0f}"


def _peak_kib() -> tuple[int, int]:
    """In a worker process: (its pid, its peak resident memory in KiB: ru_maxrss on Linux)."""
    import resource

    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def workers_peak(log: Path) -> str:
    """Each Dask worker process's peak RSS in MiB ('-' without a cluster), asked of them."""
    address = scheduler_address(log)
    if not address:
        return "-"
    from distributed import Client

    with Client(address, timeout=60) as client:
        got = client.run(_peak_kib)
    return " / ".join(f"{kib / 1024:.0f} (pid {pid})"
                      for pid, kib in (got[w] for w in sorted(got)))


def run(base: Path, name: str, extra: list[str], request: pb.TrainRequest,
        fits_rows: int) -> str:
    base.mkdir()
    with running_daemon(base, extra) as daemon:
        started = time.perf_counter()
        job = train_and_wait(daemon.stub, request, timeout=3600)
        wall = time.perf_counter() - started
        _, peak = rss_mib(daemon.pid)
        cluster = cluster_peak(base / "daemon.log")  # before the bench's client connects
        workers = workers_peak(base / "daemon.log")
        job_peak = json.loads(daemon.stub.GetVersion(pb.GetVersionRequest(
            model=request.model, version=job.version)).manifest_json)["resources"]["peak_rss_mib"]
    if job.state != pb.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"{name}: job {pb.JobState.Name(job.state)}: {job.error}")
    accuracy = job.metrics["accuracy"].mean
    load = os.getloadavg()[0]
    return (f"| {name} | {wall:.1f} | {fits_rows / wall:,.0f} | {peak:.0f} | {job_peak:.0f} "
            f"| {cluster} | {workers} | {accuracy:.4f} | {load:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="LocalCluster sizes to run (default: 1 2)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(f"commit {git_commit()}; {load_note()}")
    with scratch_folder("modeld-bench-dask-", args.keep) as base:
        t = time.perf_counter()
        write_dataset(base / "data", args.rows, args.columns, args.partitions, seed=7)
        print(f"wrote {args.rows} rows x {args.columns} columns in {args.partitions} Parquet "
              f"files in {time.perf_counter() - t:.1f} s")
        fits_rows = args.rows * (args.folds + 1)
        print("| engine | wall s | rows/s (rows x (folds+1) / wall) | daemon peak RSS MiB "
              "| job process peak RSS MiB | cluster process (scheduler, nannies) peak RSS MiB "
              "| each Dask worker's peak RSS MiB | accuracy | load 1 min after |")
        print("|---|---|---|---|---|---|---|---|---|")

        def request(engine: str, path: str) -> pb.TrainRequest:
            return pb.TrainRequest(model=f"synth-{engine}", algorithm="xgboost",
                                   dataset=pb.Dataset(path=path, target="label"),
                                   cv_folds=args.folds, seed=42, engine=engine)

        print(run(base / "local", "local", ["--data-root", str(base / "data")],
                  request("local", "synth.parquet"), fits_rows), flush=True)
        for n in args.workers:
            print(run(base / f"dask{n}", f"dask, {n} worker{'s' if n > 1 else ''}",
                      ["--data-root", str(base / "data"), "--dask-local", str(n)],
                      request("dask", "synth"), fits_rows), flush=True)
    print(load_note())


if __name__ == "__main__":
    main()
