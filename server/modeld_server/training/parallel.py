"""Runs a job's independent fits (the folds, the final fit) side by side in forked processes.

Cross-validation folds do not depend on each other, and the final fit on all rows does
not depend on them either. An estimator that trains on one core (logistic regression,
ridge, random forests and isolation forests as modeld builds them) leaves the machine's
other cores idle while the folds run one after the other; here they run at once.

The children are forked from the job's worker process with os.fork, so they inherit the
training data without copying or pickling it, and send back only what they computed: a
fold's predictions and scores, or the fitted final pipeline.

A child inherits only the forking thread, so what it runs must not need another thread
of the parent: here, NumPy and the estimators of Algorithm.single_threaded, with BLAS set
to one thread. Threads the parent may have (pandas' Arrow pool after a Parquet read) are
never used by that code. OpenMP's are: GNU libgomp breaks in a child forked after its
pool started, so a worker that has fitted a self-threading estimator (XGBoost,
HistGradientBoosting) never forks (worker.py). multiprocessing's pools were no option:
they refuse to start from the worker, a daemonic process, and Pool waits forever for the
task of a child the OOM killer took.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_PR_SET_PDEATHSIG = 1


class Background(Generic[T]):
    """fn() running in a thread of this process, beside what the caller does meanwhile.

    For work that spends its time in C code that lets go of the GIL (reading a CSV with
    pandas, hashing a file, scanning bytes with NumPy, compressing): on 2 CPUs two of
    them take the time of the longer one. Every Background must be waited for (wait() or
    result()) before anything forks (fork_map): a forked child would not have its thread.
    """

    def __init__(self, fn: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc

    def wait(self) -> None:
        """Waits for fn() to end, whatever it returned or raised."""
        self._thread.join()

    def result(self) -> T:
        """What fn() returned; raises what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when fn() returned


class SideWork(Generic[T]):
    """Independent pieces of work that run in a thread while this thread does something
    that leaves a core idle, one piece each time (beside); finish() runs the rest here.

    Cross-validation with a self-threading estimator (XGBoost) keeps both cores busy
    while it fits and predicts, and one thread computes each fold's metrics: a piece of
    the reference profile fits in beside them, where a thread beside the fit would take
    a core from OpenMP's threads, which wait at their barriers for the one left behind.
    Only in a process that forks nothing meanwhile (see Background).
    """

    def __init__(self, pieces: Sequence[Callable[[], T]]) -> None:
        self._pieces = list(pieces)
        self._results: list[T] = []

    def beside(self, fn: Callable[[], U]) -> U:
        """fn(), with the next piece (if any is left) in a thread meanwhile; returns once both
        are done (raises what fn or the piece raised)."""
        if len(self._results) == len(self._pieces):
            return fn()
        piece = Background(self._pieces[len(self._results)])
        try:
            value = fn()
        finally:
            piece.wait()
        self._results.append(piece.result())
        return value

    def finish(self) -> list[T]:
        """Every piece's result, in order; those not run beside anything run here now."""
        while len(self._results) < len(self._pieces):
            self._results.append(self._pieces[len(self._results)]())
        return list(self._results)


class FitProcessDied(RuntimeError):
    """A fit process ended without an answer (killed: most often out of memory)."""


@cache
def blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries.

    Finding them walks every loaded library (about 40 ms here), so it is done once, in
    the forkserver (preheat.py calls this); setting a limit through it takes under 1 ms.
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so a container's cpuset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def fork_map(fn: Callable[[Any], Any], items: Sequence[Any],
             workers: int) -> Iterator[tuple[int, Any]]:
    """Yields (index, fn(items[index])) for every item, in the order they finish.

    With `workers` > 1 (and more than one item) the calls run in that many forked
    processes, each taking the next item when it is done; otherwise here, in order. When
    the OS refuses a fork (no memory for it), the calls run here, in order.

    Args:
        fn: a function of one item, returning something picklable.
        items: the work; inherited by the children, never pickled.
        workers: processes to use at most.

    Raises:
        Whatever a call raised; FitProcessDied when a child ended without answering.
    """
    workers = min(workers, len(items))
    children = _fork_children(fn, items, workers) if workers > 1 else {}
    if not children:
        for index, item in enumerate(items):
            yield index, fn(item)
        return
    try:
        pending = iter(range(len(items)))
        busy: list[Connection] = []
        for conn in children:
            _hand_out(conn, pending, busy)
        while busy:
            for ready in wait(busy):
                assert isinstance(ready, Connection)
                busy.remove(ready)
                yield _answer(ready)
                _hand_out(ready, pending, busy)
    finally:
        _reap(children)


def _fork_children(fn: Callable[[Any], Any], items: Sequence[Any],
                   workers: int) -> dict[Connection, int]:
    """Starts `workers` children ({their pipe: pid}); none when the OS refuses a fork."""
    children: dict[Connection, int] = {}
    # One BLAS thread per child, so two children on two cores do not fight over them.
    # Set here and inherited: set in a child after the fork, OpenBLAS's first call there
    # costs 80 ms more (its buffers are rebuilt), more than a fold takes. Frozen, the heap
    # is out of the collector's reach in the children, which would otherwise write to every
    # object's header and so copy the heap page by page.
    gc.freeze()
    try:
        with blas_controller().limit(limits=1):
            for _ in range(workers):
                conn, pid = _fork_child(fn, items, list(children))
                children[conn] = pid
    except OSError:  # ENOMEM, EAGAIN: fit in this process instead
        _reap(children)
        return {}
    finally:
        gc.unfreeze()
    return children


def _fork_child(fn: Callable[[Any], Any], items: Sequence[Any],
                siblings: list[Connection]) -> tuple[Connection, int]:
    ours, theirs = Pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: it never returns from here
        ours.close()
        for pipe in siblings:  # the parent's ends of earlier children's pipes
            pipe.close()
        _child(fn, items, theirs, parent)
    theirs.close()
    return ours, pid


def _hand_out(conn: Connection, pending: Iterator[int], busy: list[Connection]) -> None:
    index = next(pending, None)
    try:
        conn.send(index)  # None tells the child to exit
    except OSError:  # BrokenPipeError: it died while idle
        if index is not None:
            raise _died() from None
        return
    if index is not None:
        busy.append(conn)


def _answer(conn: Connection) -> tuple[int, Any]:
    try:
        ok, index, value = conn.recv()
    except (EOFError, OSError):
        raise _died() from None
    if not ok:
        raise value
    return index, value


def _died() -> FitProcessDied:
    return FitProcessDied("a fit process died without an answer (out of memory, or killed "
                          "by an operator)")


def _reap(children: dict[Connection, int]) -> None:
    """Ends the children: on success they have exited or are exiting; on an error, stop
    them at once rather than wait for fits nobody needs."""
    for conn, pid in children.items():
        conn.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _child(fn: Callable[[Any], Any], items: Sequence[Any], conn: Connection,
           parent: int) -> NoReturn:
    """Answers items until told to stop, then exits without running the parent's cleanup."""
    code = 1
    try:
        _child_setup(parent)
        while (index := conn.recv()) is not None:
            try:
                conn.send((True, index, fn(items[index])))
            except Exception as exc:  # the parent raises it, as the job's failure
                conn.send((False, index, _picklable(exc)))
        code = 0
    finally:
        os._exit(code)


def _child_setup(parent: int) -> None:
    """Dies with the job's process.

    CancelJob and the job limits kill the worker process with SIGKILL; without the
    death signal its children would go on fitting for nobody.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def die_with_parent() -> None:
    """Has the kernel SIGKILL this process when the *thread* that forked it ends.

    Linux only (elsewhere nothing happens). Not inherited by this process's own children:
    each arms its own (spawner.py draws the whole chain).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _picklable(exc: Exception) -> Exception:
    """`exc` if it survives the trip to the parent (pickled and unpickled), else its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # something unpicklable inside, or an __init__ its args do not fit
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
