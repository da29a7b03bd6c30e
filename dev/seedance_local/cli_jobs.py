"""`seedance-pipeline jobs list|show|retry|finalize`: look at a pipeline's jobs, send failed ones again, and turn an
approved draft into its final."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from seedance_local import draft_finalize, operator_tools
from seedance_local.cli_common import CliParser, Subcommands, positive_int, target_from_args
from seedance_pipeline.models import Job, JobStatus


def _job_status(text: str) -> JobStatus:
    try:
        return JobStatus(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a job status (choose from {', '.join(s.value for s in JobStatus)})"
        ) from None


def add_jobs_commands(commands: Subcommands, target: CliParser) -> None:
    jobs = commands.add_parser("jobs", help="list, show or retry jobs").add_subparsers(
        dest="jobs_command", required=True, metavar="ACTION"
    )
    listing = jobs.add_parser("list", parents=[target], help="the newest jobs")
    listing.add_argument("--status", type=_job_status)
    listing.add_argument("--limit", type=positive_int, default=50)
    listing.add_argument("--output", choices=("table", "json"), default="table", help="json: one array, whole ids")
    id_help = f"a job id, or a unique prefix of one (at least {operator_tools.MIN_ID_PREFIX} characters)"
    show = jobs.add_parser("show", parents=[target], help="one job's record as JSON")
    show.add_argument("job_id", metavar="JOB", help=id_help)
    show.add_argument("--output", choices=("json",), default="json", help="the record as JSON (the only form)")
    jobs.add_parser("retry", parents=[target], help="send a FAILED or TIMED_OUT job again").add_argument(
        "job_id", metavar="JOB", help=id_help
    )
    finalize = jobs.add_parser("finalize", parents=[target], help="make the final of a delivered draft (one new job)")
    finalize.add_argument("job_id", metavar="JOB", help=id_help)
    finalize.add_argument("--resolution", help="the final's resolution (default: the stack's Resolution)")


def jobs_command(args: argparse.Namespace, console: Console) -> int:
    target = target_from_args(args)
    if args.jobs_command == "list":
        jobs = operator_tools.list_jobs(target.store(), status=args.status, limit=args.limit)
        if args.output == "json":
            _write_json(console, [job_document(job) for job in jobs])
        else:
            console.print(jobs_table(jobs))
        return 0
    if args.jobs_command == "show":
        _write_json(console, job_document(operator_tools.show_job(target.store(), args.job_id)))
        return 0
    if args.jobs_command == "finalize":
        key, _ = draft_finalize.finalize_draft(target, args.job_id, resolution=args.resolution)
        console.print(f"wrote {key}: its upload makes the final, a job of its own linked to the draft")
        return 0
    job = operator_tools.retry_job(target.store(), args.job_id)
    console.print(f"job {job.job_id} is WAITING again; the next poll submits it ({job.notes[-1]})")
    return 0


def _write_json(console: Console, document: Any) -> None:
    # Straight to the file, not through rich: it would wrap long lines and colour the keys.
    console.file.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


# Job fields that hold epoch seconds; people and scripts read them as ISO 8601 UTC, as `jobs list` shows them.
TIME_FIELDS = ("created_at", "updated_at", "submitted_at", "finished_at", "next_check_at", "submission_started_at",
               "lease_until")  # fmt: skip


def job_document(job: Job) -> dict[str, Any]:
    document: dict[str, Any] = job.model_dump(mode="json")
    for name in TIME_FIELDS:
        if isinstance(document.get(name), int | float):
            document[name] = operator_tools.iso_time(document[name])
    return document


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(title=f"{len(jobs)} job(s), newest first")
    # Short ids keep each row on one line when piped; `jobs show` takes them, `--output json` has whole ones.
    table.add_column("job id", no_wrap=True)
    for column in ("status", "source", "created", "task id", "error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        problem = job.error or job.last_error
        table.add_row(
            operator_tools.short_id(job.job_id),
            job.status.value,
            job.source_key,
            operator_tools.iso_time(job.created_at),
            job.task_id or "",
            f"{problem.code}: {problem.message}" if problem else "",
        )
    return table
