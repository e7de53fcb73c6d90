"""--dask-local's cluster, in a process of its own: a Dask scheduler and N nannies.

`python -m modeld_server.training.dask_local N` starts a scheduler on 127.0.0.1 and N
nannies, each keeping one single-threaded worker process alive (a killed worker is
restarted, as in a `distributed.LocalCluster`). Once every worker has registered it prints
one JSON line on stdout, `{"scheduler": "tcp://127.0.0.1:PORT", "workers": N}` (everything
else it and its workers print goes to stderr, the daemon's log file for it), and runs
until its stdin reaches end of file: the daemon holds the other end, so the cluster closes
when the daemon closes it or dies (even by SIGKILL). SIGTERM and SIGINT close it too.

Why not a LocalCluster in the daemon: xgboost.dask runs its collective tracker on the
scheduler (`client.run_on_scheduler`), and once, when a worker was killed mid-fit, the
tracker's C++ side aborted the process hosting the scheduler. Here that process is this
one, not the daemon; the daemon starts a new cluster for the next job (cluster.py). The
daemon also never imports dask or distributed for --dask-local (~140 MiB).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("modeld.dask_local")


async def serve(workers: int, ready: int) -> None:
    """Runs the cluster until stdin closes or SIGTERM/SIGINT arrives; writes the ready
    line to the file descriptor `ready`, then closes it."""
    import distributed
    from distributed.worker_memory import parse_memory_limit

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    threading.Thread(target=_until_eof, args=(loop, stop), daemon=True,
                     name="stdin-eof").start()
    # Each worker's share of the machine's memory, as a LocalCluster of N workers gives it.
    memory = parse_memory_limit("auto", 1, workers, logger=log)
    async with distributed.Scheduler(host="127.0.0.1", port=0, dashboard=False) as scheduler:
        nannies = [distributed.Nanny(scheduler.address, nthreads=1, name=i, memory_limit=memory,
                                     host="127.0.0.1", dashboard=False)
                   for i in range(workers)]
        await asyncio.gather(*nannies)  # each returns once its worker has registered
        line = json.dumps({"scheduler": scheduler.address, "workers": workers}) + "\n"
        with os.fdopen(ready, "w") as out:
            out.write(line)
        await stop.wait()
        await asyncio.gather(*(nanny.close() for nanny in nannies), return_exceptions=True)


def _until_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Blocks until the daemon's end of stdin closes, then stops the cluster."""
    while sys.stdin.buffer.read(4096):
        pass
    loop.call_soon_threadsafe(stop.set)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m modeld_server.training.dask_local WORKERS", file=sys.stderr)
        return 2
    # The daemon reads one line from stdout and nothing after. Whatever else this process
    # and its worker processes (which inherit fd 1) print, XGBoost's warnings among it,
    # goes to the log on stderr: a pipe nobody drains would block them once full.
    ready = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                                                   "%(message)s")
    asyncio.run(serve(int(argv[0]), ready))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
