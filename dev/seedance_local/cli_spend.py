"""`seedance-pipeline spend`: today's and this month's provider tokens and estimated cost, by model."""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from seedance_local.cli_common import CliParser, Subcommands, target_from_args
from seedance_local.spend_report import CURRENCIES, PeriodSpend, SpendReport, spend_report


def add_spend_command(commands: Subcommands, target: CliParser) -> None:
    spend = commands.add_parser(
        "spend",
        parents=[target],
        help="provider tokens and estimated cost by model, today and this month (UTC)",
        description="Reads every job record (a Scan of the jobs table): an operator command, not for a schedule.",
    )
    spend.add_argument(
        "--currency",
        choices=CURRENCIES,
        help="price every model in this currency (CNY: Volcengine list prices, USD: BytePlus); "
        "default: each model's own platform",
    )
    spend.add_argument("--output", choices=("table", "json"), default="table")


def spend_command(args: argparse.Namespace, console: Console) -> int:
    report = spend_report(target_from_args(args).store(), now=time.time(), currency=args.currency)
    if args.output == "json":
        console.file.write(json.dumps(report.document(), indent=2) + "\n")
        return 0
    for period in report.periods:
        console.print(spend_table(period))
    console.print(
        f"daily budget counter {report.budget_day} (UTC): {report.budget_committed_tokens:,} tokens committed "
        "(0 when DailyTokenBudget is not set)"
    )
    return 0


def spend_table(period: PeriodSpend) -> Table:
    title = "today" if period.name == "today" else "this month"
    table = Table(title=f"{title} (since {period.start})")
    for column in ("model", "jobs sent", "est. tokens sent", "succeeded", "billed tokens", "charged tokens", "cost"):
        table.add_column(column, overflow="fold", justify="left" if column == "model" else "right")
    for row in period.models:
        cost = f"{row.estimated_cost:,.2f} {row.currency}" if row.estimated_cost is not None else "tokens only"
        billed = f"{row.billed_tokens:,}"
        if row.succeeded_without_usage:
            billed += f" ({row.succeeded_without_usage} without usage: estimate charged)"
        table.add_row(
            row.model,
            str(row.jobs_sent),
            f"{row.estimated_tokens:,}",
            str(row.jobs_succeeded),
            billed,
            f"{row.charged_tokens:,}",
            cost,
        )
    if not period.models:
        table.add_row("(no jobs)", "0", "0", "0", "0", "0", "")
    return table


__all__ = ["SpendReport", "add_spend_command", "spend_command"]
