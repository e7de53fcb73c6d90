"""Following a training job: a live bar on a terminal, plain lines when piped, then a summary.

Ctrl-C while following asks whether to cancel the job or detach from it (the
job keeps training on the daemon either way unless cancelled); without a
terminal to ask on, it detaches. Both ways exit 130, the shell's code for an
interrupted command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.prompt import Prompt

from modeld._cli.output import Output
from modeld._cli.views import show_metrics
from modeld.client import Client
from modeld.jobs import JobHandle
from modeld.types import Job, JobState, to_dict

__all__ = ["EXIT_INTERRUPTED", "follow", "summarize"]

EXIT_INTERRUPTED = 130


def follow(out: Output, client: Client, handle: JobHandle) -> Job:
    """Waits for the job to end while showing its progress.

    Args:
        out: Where to show progress (stderr).
        client: Used to cancel the job if the user asks to.
        handle: The job to follow.

    Returns:
        The job in its final state.
    """
    try:
        with _display(out) as show:
            return handle.wait(progress=show)
    except KeyboardInterrupt:
        _interrupted(out, client, handle.id)


def summarize(out: Output, job: Job) -> int:
    """Prints how a followed job ended.

    Args:
        out: Where to print.
        job: The job in its final state.

    Returns:
        The exit code: 0 if it succeeded, 1 if it failed or was cancelled.
    """
    if out.as_json:
        out.json(to_dict(job))
    elif job.state is JobState.SUCCEEDED:
        if not out.quiet:
            show_metrics(out, job.metrics)
        where = "active" if job.activated else "published, not active"
        out.result(f"{job.model} v{job.version} ({where})")
    if job.state is JobState.FAILED:
        out.error("JOB_FAILED", f"job {job.id} failed: {job.error or job.message}")
    elif job.state is JobState.CANCELLED:
        out.error("JOB_CANCELLED", f"job {job.id} was cancelled; nothing was published")
    return 0 if job.state is JobState.SUCCEEDED else 1


@contextmanager
def _display(out: Output) -> Iterator[Callable[[Job], None]]:
    if out.quiet or out.as_json:
        yield lambda job: None
    elif out.err.is_terminal:
        with _bar(out) as show:
            yield show
    else:
        yield _lines(out)


@contextmanager
def _bar(out: Output) -> Iterator[Callable[[Job], None]]:
    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[phase]:<16}"), BarColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=out.err) as progress:
        task = progress.add_task("train", total=100, phase="queued", detail="")

        def show(job: Job) -> None:
            progress.update(task, completed=job.progress * 100, phase=job.phase or job.state.value,
                            detail=job.error or job.message)

        yield show


def _lines(out: Output) -> Callable[[Job], None]:
    last: list[tuple[str, str, str]] = []

    def show(job: Job) -> None:
        # Coalesced events can repeat a state; a log wants each step once.
        key = (job.state.value, job.phase, job.message)
        if last and last[-1] == key:
            return
        last.append(key)
        stamp = datetime.now().strftime("%H:%M:%S")
        out.err.print(f"{stamp} {job.state.value} {job.phase} {job.progress:.0%} "
                      f"{job.error or job.message}".rstrip(), markup=False, highlight=False)

    return show


def _interrupted(out: Output, client: Client, job_id: str) -> NoReturn:
    choice = "detach"
    if out.interactive:
        try:
            choice = Prompt.ask(f"\njob {job_id} is still running on the daemon: cancel it, "
                                "or detach and leave it running?", choices=["cancel", "detach"],
                                default="detach", console=out.err)
        except (KeyboardInterrupt, EOFError):
            choice = "detach"  # a second Ctrl-C must not cancel anything
    if choice == "cancel":
        job = client.cancel_job(job_id)
        out.err.print(f"job {job_id} {job.state.value}", markup=False)
    else:
        out.err.print(f"detached; job {job_id} keeps running. Follow it again with: "
                      f"modelctl watch {job_id}", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED)
