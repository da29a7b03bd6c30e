"""`seedance-pipeline run IMAGE...`: images through the whole local pipeline, and the results table.

`demo` goes the same way with the bundled samples. The AWS side is the local moto stack built from template.yaml,
the provider the local simulator unless SEEDANCE_API_KEY is set.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from rich.console import Console

from seedance_local.cli_common import CliParser, Subcommands
from seedance_local.run_engine import REAL_PROVIDER_TIMEOUT_SECONDS, SIMULATED_TIMEOUT_SECONDS, run_and_report
from seedance_local.run_uploads import planned_user_uploads
from seedance_pipeline.models import Ratio, Resolution
from seedance_pipeline.rules.manifests import MAX_TAKES
from seedance_pipeline.rules.model_catalogue import BUILT_IN_CATALOGUE
from seedance_pipeline.rules.video_request import MAX_SEED


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {MAX_SEED}")
    return value


def _takes(text: str) -> int:
    value = int(text) if text.strip().isascii() and text.strip().isdigit() else 0
    if not 1 <= value <= MAX_TAKES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_TAKES}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def timing_options() -> CliParser:
    """--out, --timeout, --api and --no-callbacks, shared by `run` and `demo`."""
    timing = CliParser(add_help=False)
    timing.add_argument("--out", type=Path, default=Path("out"), help="where videos and the log go (default ./out)")
    timing.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        help=f"give up waiting after this many seconds (default {SIMULATED_TIMEOUT_SECONDS:.0f} with the simulator, "
        f"{REAL_PROVIDER_TIMEOUT_SECONDS:.0f} with the real provider; sooner when every job is stuck on one error)",
    )
    timing.add_argument(
        "--api",
        choices=("unified", "ark"),
        default=None,
        help="the provider dialect: unified (a gateway's /v2/videos/generations) or ark (native Volcengine/BytePlus "
        "v3); the simulator speaks both (default: SEEDANCE_PROVIDER_API, else unified)",
    )
    timing.add_argument(
        "--no-callbacks",
        dest="callbacks",
        action="store_false",
        help="deploy with CallbackMode=off: only the poller finds finished videos (default with the simulator: "
        "on, the provider POSTs each status change to the local Function URL; the real provider cannot reach it)",
    )
    return timing


def add_run_command(commands: Subcommands, timing: CliParser) -> None:
    run = commands.add_parser("run", parents=[timing], help="run your own images through the pipeline")
    run.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE", help="image files, folders of them, or .csv/.jsonl batch files"
    )
    run.add_argument("--prompt", help="what should happen in the video (any language)")
    # Not a fixed list: a model allowed with EXTRA_MODELS is as good as a built-in one; the pipeline judges it.
    run.add_argument(
        "--model", metavar="MODEL", help=f"a model id, e.g. {', '.join(BUILT_IN_CATALOGUE.image_to_video_ids())}"
    )
    run.add_argument("--resolution", choices=get_args(Resolution))
    run.add_argument("--ratio", choices=get_args(Ratio))
    run.add_argument("--duration", type=int, choices=(5, 10), help="seconds")
    run.add_argument("--seed", type=_seed, help=f"0..{MAX_SEED}; the same seed repeats a result")
    run.add_argument(
        "--takes",
        type=_takes,
        help=f"1..{MAX_TAKES}: that many videos of each image, each with its own seed (the --seed, or one derived, "
        "plus 0..N-1), named <image>.take<N> with a report beside them",
    )
    run.add_argument("--camera-fixed", action=argparse.BooleanOptionalAction, default=None)
    run.add_argument("--watermark", action=argparse.BooleanOptionalAction, default=None)
    run.add_argument(
        "--last-frame", action=argparse.BooleanOptionalAction, default=None, help="also save the last frame"
    )


def run_command(args: argparse.Namespace, console: Console) -> int:
    return run_and_report(planned_user_uploads(args), args, console)
