"""Starts the training forkserver from one thread that lives as long as the daemon.

A daemon killed with SIGKILL runs no cleanup. So that its training processes do not train
on for nobody, past every limit the daemon enforced, each arms a death signal
(PR_SET_PDEATHSIG): the forkserver dies with the daemon (lifeline.py, its first preload),
a job's worker with the forkserver (entry.run_job), a fit process with its worker
(parallel.py). The resource tracker then reads the end of its pipe and exits.

The kernel sends the death signal when the *thread* that forked the process ends, not its
process. multiprocessing starts the forkserver from whichever thread first starts a
process: the warm-up thread or a job's thread, both of which return, and the forkserver
would be killed with them. So the daemon asks for it here, on a thread that never returns.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from multiprocessing import forkserver


class _Spawner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="forkserver-spawner",
                                                daemon=True)
                self._thread.start()
        request: Future[None] = Future()
        self._requests.put(request)
        request.result()

    def _serve(self) -> None:
        while True:
            request = self._requests.get()
            try:
                forkserver.ensure_running()  # returns at once when it is already running
            except BaseException as exc:  # handed to the caller, who raises it
                request.set_exception(exc)
            else:
                request.set_result(None)


_SPAWNER = _Spawner()


def ensure_forkserver() -> None:
    """Starts the forkserver unless it runs, from the spawner thread; returns once started.

    Call it before each Process.start of the forkserver context, whose own check then
    finds the forkserver running and starts nothing from the calling thread.
    """
    _SPAWNER.ensure_running()
