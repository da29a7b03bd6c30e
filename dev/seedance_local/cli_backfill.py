"""`seedance-pipeline backfill s3://bucket/prefix`: jobs for objects uploaded before the stack existed."""

from __future__ import annotations

import argparse
from collections import Counter

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn

from seedance_local import backfill_tools
from seedance_local.cli_common import CliParser, Subcommands, target_from_args
from seedance_local.operator_tools import OperatorError


def _s3_url(text: str) -> tuple[str, str]:
    try:
        return backfill_tools.parse_s3_url(text)
    except OperatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_backfill_command(commands: Subcommands, target: CliParser) -> None:
    backfill = commands.add_parser("backfill", parents=[target], help="make jobs for objects already in a bucket")
    backfill.add_argument("url", metavar="S3_URL", type=_s3_url, help="s3://bucket/prefix")
    backfill.add_argument(
        "--include-recent",
        action="store_true",
        help="also take objects modified in the last 15 minutes (their S3 event may still make a job of its own)",
    )


def backfill_command(args: argparse.Namespace, console: Console) -> int:
    bucket, prefix = args.url
    target = target_from_args(args)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} objects"))
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("listing", total=None)
        counts: Counter[str] = Counter()

        def on_object(key: str, outcome: str) -> None:
            counts[outcome] += 1
            progress.update(bar, advance=1, description=", ".join(f"{n} {o}" for o, n in sorted(counts.items())))

        report = backfill_tools.backfill(
            target.client("s3"),
            target.store(),
            bucket,
            prefix,
            target.naming_settings(),
            output_bucket=target.output_bucket,
            on_object=on_object,
            settle_seconds=0 if args.include_recent else backfill_tools.BACKFILL_SETTLE_SECONDS,
        )
    skipped = ""
    if report.has_job:
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.existing_statuses.items()))
        skipped = f", skipped {report.has_job} that already have a job ({statuses}; `jobs retry` sends one again)"
    if report.recent:
        skipped += f", left {report.recent} modified in the last 15 minutes (run again later, or --include-recent)"
    console.print(
        f"created {report.created}, already present {report.already_present}, ignored {report.ignored}{skipped} "
        f"(of {report.seen} objects under s3://{bucket}/{prefix})",
        highlight=False,
    )
    return 0
