"""What the `seedance-pipeline` command groups share: the parser, usage errors, the pipeline target, log capture."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeAlias

from seedance_local import operator_tools
from seedance_local.operator_tools import Target

PROG = "seedance-pipeline"

# What each command group adds its parsers to (subparsers are CliParsers too, so their errors are one line).
Subcommands: TypeAlias = "argparse._SubParsersAction[CliParser]"


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit code 2, and nothing started."""


class CliParser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; a single line is easier to read and to script.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def target_options() -> CliParser:
    """The options that say which pipeline the operator commands (jobs, backfill) act on."""
    target = CliParser(add_help=False)
    where = target.add_argument_group("target (one of --stack, --table, --local)")
    where.add_argument("--stack", help="a deployed stack's name (reads its CloudFormation outputs)")
    where.add_argument("--table", help="the jobs table name")
    where.add_argument(
        "--local", action="store_true", help=f"the pipeline `local up` runs ({operator_tools.LOCAL_STATE_FILE})"
    )
    where.add_argument("--state-file", type=Path, default=Path(operator_tools.LOCAL_STATE_FILE), help=argparse.SUPPRESS)
    where.add_argument("--bucket", help="the input bucket (with --table)")
    where.add_argument("--endpoint-url", help="an AWS endpoint such as a moto server (with --table)")
    where.add_argument("--region")
    where.add_argument("--profile")
    where.add_argument("--input-prefix", default=operator_tools.DEFAULT_INPUT_PREFIX, help="with --table")
    where.add_argument("--output-prefix", default=operator_tools.DEFAULT_OUTPUT_PREFIX, help="with --table")
    where.add_argument(
        "--due-shards", type=positive_int, default=operator_tools.DEFAULT_DUE_SHARDS, help="with --table"
    )
    return target


def target_from_args(args: argparse.Namespace) -> Target:
    chosen = [
        name for name, given in (("--stack", args.stack), ("--table", args.table), ("--local", args.local)) if given
    ]
    if len(chosen) != 1:
        raise UsageError("say which pipeline with exactly one of --stack NAME, --table NAME or --local")
    if args.stack:
        return operator_tools.stack_target(args.stack, profile=args.profile, region=args.region)
    if args.local:
        return operator_tools.local_target(args.state_file)
    return Target(
        table=args.table,
        bucket=args.bucket,
        region=args.region,
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        input_prefix=args.input_prefix,
        output_prefix=args.output_prefix,
        due_shards=args.due_shards,
    )


@contextlib.contextmanager
def logs_to(log: IO[str]) -> Iterator[None]:
    """The handlers print EMF metrics to stdout and libraries warn on stderr: in Lambda that is CloudWatch,
    here it is the log file, so the terminal keeps only the progress bar and the table."""
    from seedance_pipeline.observability import logger

    handler: Any = logger.registered_handler  # a logging.StreamHandler
    previous = handler.stream
    # Plain assignments, not setStream(): that flushes the old stream, which may be closed already (a stream a
    # previous caller left behind). LocalPipeline's own setStream(log) is then a no-op.
    handler.stream = log
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        # LocalPipeline leaves the logger on our log file, which is about to close.
        handler.stream = sys.stdout if getattr(previous, "closed", False) else previous
