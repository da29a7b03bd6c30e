"""`seedance-pipeline batch list|show`: a batch file's progress (done, failed, waiting, running; estimated finish)."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from seedance_local import operator_tools
from seedance_local.cli_common import CliParser, Subcommands, UsageError, target_from_args
from seedance_pipeline.adapters.job_store import JobStore
from seedance_pipeline.logic.batch_report import batch_job_ids, days_at_budget
from seedance_pipeline.models import Batch, JobStatus

FAILED = (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT)
RUNNING = (JobStatus.SUBMITTED, JobStatus.RUNNING)


@dataclass(frozen=True)
class BatchProgress:
    batch: Batch
    done: int
    failed: int
    waiting: int
    running: int
    now: float

    @property
    def ended(self) -> int:
        return self.done + self.failed

    @property
    def estimated_finish(self) -> float | None:
        """From the rate jobs have ended since the batch was read; None before the first one ends."""
        if self.batch.completed_at is not None:
            return self.batch.completed_at
        live_ended = self.ended - self.batch.refused_rows
        elapsed = self.now - self.batch.created_at
        if live_ended <= 0 or elapsed <= 0:
            return None
        return self.now + (self.batch.jobs - self.ended) * elapsed / live_ended


def progress_of(store: JobStore, batch: Batch, *, now: float) -> BatchProgress:
    jobs = store.get_jobs([job_id for _, _, job_id in batch_job_ids(batch)])
    counts = Counter(job.status for job in jobs.values())
    return BatchProgress(
        batch=batch,
        done=counts[JobStatus.SUCCEEDED],
        failed=sum(counts[s] for s in FAILED),
        # A row not yet written (the submit function is still writing) counts as waiting.
        waiting=counts[JobStatus.WAITING] + batch.jobs - len(jobs),
        running=sum(counts[s] for s in RUNNING),
        now=now,
    )


def find_batch(store: JobStore, key_or_id: str) -> Batch:
    """The newest batch of a batch file's key, or the batch with this id."""
    matches = [b for b in store.iter_batches() if key_or_id in (b.key, b.batch_id)]
    if not matches:
        raise operator_tools.OperatorError(f"no batch with the key or id {key_or_id!r}")
    return max(matches, key=lambda b: b.created_at)


def add_batch_commands(commands: Subcommands, target: CliParser) -> None:
    batch = commands.add_parser("batch", help="the progress of batch files").add_subparsers(
        dest="batch_command", required=True, metavar="ACTION"
    )
    batch.add_parser("list", parents=[target], help="every batch, newest first")
    show = batch.add_parser("show", parents=[target], help="one batch's progress, live until it completes")
    show.add_argument("key", metavar="KEY", help="the batch file's key (e.g. uploads/shoot/catalogue.csv) or id")
    show.add_argument("--once", action="store_true", help="print the progress once and return")
    show.add_argument("--every", type=float, default=5.0, help="seconds between reads while watching")
    show.add_argument(
        "--daily-token-budget", type=int, default=0, help="the stack's DailyTokenBudget, to say the days at budget"
    )


def batch_command(args: argparse.Namespace, console: Console) -> int:
    store = target_from_args(args).store()
    if args.batch_command == "list":
        batches = sorted(store.iter_batches(), key=lambda b: b.created_at, reverse=True)
        console.print(batches_table([progress_of(store, b, now=time.time()) for b in batches]))
        return 0
    if args.every <= 0:
        raise UsageError("--every must be a positive number of seconds")
    batch = find_batch(store, args.key)
    state = progress_of(store, batch, now=time.time())
    console.print(summary(batch, args.daily_token_budget))
    if args.once or batch.completed_at is not None:
        console.print(progress_line(state))
        return 0
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console, transient=False) as bar:
        task = bar.add_task(progress_line(state), total=batch.jobs, completed=state.ended)
        while True:
            batch = store.get_batch(batch.batch_id) or batch
            state = progress_of(store, batch, now=time.time())
            bar.update(task, description=progress_line(state), completed=state.ended)
            if batch.completed_at is not None:
                return 0
            time.sleep(args.every)


def summary(batch: Batch, budget: int) -> str:
    days = days_at_budget(batch.estimated_tokens, budget)
    at_budget = f", about {days} day(s) at a DailyTokenBudget of {budget:,}" if days is not None else ""
    return (
        f"batch {batch.batch_id} of s3://{batch.bucket}/{batch.key}: {batch.rows} rows, {batch.jobs} videos, "
        f"{batch.refused_rows} row(s) refused when read; {batch.estimated_tokens:,} tokens estimated{at_budget}"
    )


def progress_line(state: BatchProgress) -> str:
    finish = state.estimated_finish
    when = operator_tools.iso_time(finish) if finish is not None else "unknown yet"
    label = "finished" if state.batch.completed_at is not None else "estimated finish"
    return (
        f"done {state.done}, failed {state.failed}, waiting {state.waiting}, running {state.running} "
        f"of {state.batch.jobs}; {label} {when}"
    )


def batches_table(states: list[BatchProgress]) -> Table:
    table = Table(title=f"{len(states)} batch(es), newest first")
    for column in ("batch id", "file", "created", "videos", "done", "failed", "waiting", "running", "finish"):
        table.add_column(column, overflow="fold")
    for state in states:
        batch = state.batch
        finish = state.estimated_finish
        table.add_row(
            operator_tools.short_id(batch.batch_id),
            batch.key,
            operator_tools.iso_time(batch.created_at),
            str(batch.jobs),
            str(state.done),
            str(state.failed),
            str(state.waiting),
            str(state.running),
            operator_tools.iso_time(finish) if finish is not None else "",
        )
    return table
