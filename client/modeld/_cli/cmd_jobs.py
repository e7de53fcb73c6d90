"""modelctl commands for training jobs: train, watch, jobs, cancel."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Annotated

import typer

from modeld._cli import spec_options as so
from modeld._cli import views
from modeld._cli.app import CalibrationChoice, EngineChoice, JobId, Model, app
from modeld._cli.follow import follow, summarize
from modeld._cli.session import session
from modeld.types import to_dict

__all__ = ["cancel", "jobs", "train", "watch"]


@app.command()
def train(
    ctx: typer.Context,
    model: Model,
    data: so.Data,
    algorithm: so.Algorithm,
    target: so.Target = "",
    param: so.Params = None,
    folds: so.Folds = 0,
    seed: so.Seed = None,
    task: so.TaskOpt = None,
    eval_label: so.EvalLabel = "",
    feature: so.Features = None,
    drop_column: so.DropColumns = None,
    filter_: so.Filters = None,
    calibration: so.Calibration = CalibrationChoice.none,
    drop_duplicates: so.DropDuplicates = False,
    fail_on_missing_target: so.FailOnMissingTarget = False,
    min_rows: so.MinRows = 0,
    max_malformed_fraction: so.MaxMalformed = None,
    no_activate: so.NoActivate = False,
    engine: so.Engine = EngineChoice.local,
    follow_job: Annotated[bool, typer.Option("--follow", "-f",
                                             help="Show progress until the job ends.")] = False,
    request_id: Annotated[str | None, typer.Option(help="Idempotency key; random if unset.",
                                                   show_default=False)] = None,
) -> None:
    """Queue a training job (cross-validate, fit, publish a new version)."""
    s = session(ctx)
    spec = so.build_spec(
        model, data=data, target=target, algorithm=algorithm, params=param, folds=folds,
        seed=seed, task=task, eval_label=eval_label, no_activate=no_activate, features=feature,
        drop_columns=drop_column, filters=filter_, calibration=calibration,
        drop_duplicates=drop_duplicates, fail_on_missing_target=fail_on_missing_target,
        min_rows=min_rows, max_malformed=max_malformed_fraction)
    spec = dataclasses.replace(spec, engine=engine.value)
    handle = s.client().submit(spec, request_id=request_id)
    if follow_job:
        raise typer.Exit(summarize(s.out, follow(s.out, s.client(), handle)))
    job = handle.job
    assert job is not None
    if s.out.as_json:
        s.out.json(to_dict(job))
    elif s.out.quiet:
        s.out.result(job.id)
    else:
        s.out.result(f"job {job.id} {job.state.value}: {model} with {algorithm} on {data}")
        s.out.info(f"follow it with: modelctl watch {job.id}")


@app.command()
def watch(ctx: typer.Context, job_id: JobId) -> None:
    """Follow a job until it ends (Ctrl-C to cancel it or detach)."""
    s = session(ctx)
    client = s.client()
    raise typer.Exit(summarize(s.out, follow(s.out, client, client.job(job_id))))


@app.command()
def jobs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's jobs.",
                                              show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=0, help="At most this many; 0 for all.")] = 20,
) -> None:
    """List training jobs, newest first."""
    s = session(ctx)
    found = list(itertools.islice(s.client().list_jobs(model), limit or None))
    if s.out.as_json:
        s.out.json({"jobs": to_dict(found)})
    else:
        views.show_jobs(s.out, found)


@app.command()
def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a queued or running job; it publishes nothing."""
    s = session(ctx)
    job = s.client().cancel_job(job_id)
    if s.out.as_json:
        s.out.json(to_dict(job))
    else:
        s.out.result(f"job {job.id} {job.state.value}")
