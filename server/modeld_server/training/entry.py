"""Light trampolines the daemon hands to worker processes.

Pickling a reference to these does not import the training libraries into the
daemon; in the worker they are already loaded by the forkserver's preload.
"""

from __future__ import annotations

from typing import Any

LIFELINE_MODULE = "modeld_server.training.lifeline"  # first: dies with the daemon
WORKER_MODULE = "modeld_server.training.worker"
PREHEAT_MODULE = "modeld_server.training.preheat"  # runs a tiny job at import (see there)
TRAINING_NICENESS = 10


def run_job(spec_json: dict[str, Any], data_root: str, staging: str, conn: Any,
            max_rows: int, context: dict[str, Any], cpus: int, memory_mb: int,
            max_bytes: int = 0, fast_paths: bool = True) -> None:
    """Runs one job (see worker.run), at a lower CPU priority than the daemon.

    Training is throughput work and serving is latency work: when both want the CPUs,
    Predict and GetStatus should not wait behind a fold of cross-validation. On an
    idle machine the niceness changes nothing.
    """
    import multiprocessing
    import os

    from modeld_server.training import worker
    from modeld_server.training.parallel import die_with_parent

    # Dies with the forkserver, which dies with the daemon (see spawner.py). A daemon
    # that died before this was armed has closed this process's parent sentinel.
    die_with_parent()
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return
    os.nice(TRAINING_NICENESS)

    worker.run(spec_json, data_root, staging, conn, max_rows, context, cpus, memory_mb,
               max_bytes, fast_paths=fast_paths)


def warm_up() -> None:
    """Does nothing: starting it makes the forkserver import the libraries ahead of any job."""
