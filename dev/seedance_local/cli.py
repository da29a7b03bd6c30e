"""`seedance-pipeline`: run the pipeline on this machine, and operate a deployed (or local) one.

    seedance-pipeline demo [--out DIR]                 the bundled samples through the whole pipeline
    seedance-pipeline run IMAGE... [options]           your own images, same path
    seedance-pipeline jobs list|show|retry ...         look at and fix jobs (--stack, --table or --local)
    seedance-pipeline batch list|show KEY              batch files' progress (done, failed, waiting, running)
    seedance-pipeline backfill s3://bucket/prefix      jobs for objects uploaded before the stack existed
    seedance-pipeline spend                            tokens and estimated cost by model, today and this month
    seedance-pipeline local up                         a long-running local pipeline for the commands above

`demo` and `run` start an embedded AWS (moto in server mode, resources from template.yaml) and drive the real
Lambda handlers with real S3 events. The provider is the local simulator unless SEEDANCE_API_KEY is set, in which
case the real Seedance API is called (SEEDANCE_API_BASE_URL picks the gateway).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from seedance_local.cli_common import PROG, CliParser, UsageError, target_options
from seedance_local.operator_tools import OperatorError

DISTRIBUTION = "seedance-s3-pipeline"
DEMO_EXTRA_MODULES = frozenset({"rich", "moto", "av", "samtranslator", "yaml", "werkzeug", "flask"})

try:  # the command groups need the `demo` extra (rich, moto, PyAV, ...); without it, say so in one line
    from rich.console import Console

    from seedance_local import cli_backfill, cli_batches, cli_demo, cli_jobs, cli_local, cli_run, cli_spend
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] not in DEMO_EXTRA_MODULES:
        raise
    _MISSING_DEMO_MODULE: str | None = (exc.name or "").split(".")[0]
else:
    _MISSING_DEMO_MODULE = None


def missing_demo_extra_message(module: str) -> str:
    return (
        f"the Python package {module!r} is missing: seedance-pipeline needs the 'demo' extra "
        f"(pip install -e '.[demo]', or `make demo` sets it up)"
    )


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog=PROG, description="Seedance image-to-video pipeline: local runs and operator tools.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    timing = cli_run.timing_options()
    cli_demo.add_demo_command(commands, timing)
    cli_run.add_run_command(commands, timing)
    target = target_options()
    cli_jobs.add_jobs_commands(commands, target)
    cli_batches.add_batch_commands(commands, target)
    cli_backfill.add_backfill_command(commands, target)
    cli_spend.add_spend_command(commands, target)
    cli_local.add_local_commands(commands)
    return parser


def _dispatch(args: argparse.Namespace, console: Any) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, Any], int]] = {
        "demo": cli_demo.demo_command,
        "run": cli_run.run_command,
        "jobs": cli_jobs.jobs_command,
        "batch": cli_batches.batch_command,
        "backfill": cli_backfill.backfill_command,
        "spend": cli_spend.spend_command,
        "local": cli_local.local_up,
    }
    return handlers[args.command](args, console)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _console() -> Any:
    # Bound to today's stdout: the pipeline redirects sys.stdout to its log while it runs. Piped output (CI logs)
    # gets 120 columns rather than rich's 80, so the results table keeps task ids and paths on one line.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, width=120 if piped else None)


def main(argv: Sequence[str] | None = None) -> int:
    if _MISSING_DEMO_MODULE is not None:
        return _fail(missing_demo_extra_message(_MISSING_DEMO_MODULE), 1)
    console = _console()
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args, console)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except OperatorError as exc:
        return _fail(str(exc), 1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}", 1)
    except BotoCoreError as exc:
        return _fail(f"AWS: {exc}", 1)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in DEMO_EXTRA_MODULES:
            return _crash(exc)
        return _fail(missing_demo_extra_message((exc.name or "?").split(".")[0]), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        return _crash(exc)


def _crash(exc: Exception) -> int:
    # A bug or an environment problem: one line here, the traceback in a file a bug report can attach.
    report = Path(tempfile.gettempdir()) / f"{PROG}-crash.txt"
    report.write_text(traceback.format_exc(), encoding="utf-8")
    return _fail(f"unexpected {type(exc).__name__}: {exc} (traceback in {report})", 1)


if __name__ == "__main__":
    sys.exit(main())
