"""`seedance-pipeline demo`: the bundled sample images through the whole local pipeline."""

from __future__ import annotations

import argparse
from importlib import resources

from rich.console import Console

from seedance_local import operator_tools
from seedance_local.cli_common import CliParser, Subcommands
from seedance_local.run_engine import run_and_report
from seedance_local.run_uploads import PlannedUpload, encode_metadata_text

SAMPLES_PACKAGE = "seedance_local"


def add_demo_command(commands: Subcommands, timing: CliParser) -> None:
    commands.add_parser(
        "demo", parents=[timing], help="run the bundled sample images (and a small batch file) through the pipeline"
    )


# "A breeze crosses the garden; the flowers sway gently." Chinese punctuation on purpose: all of it is non-ASCII.
DEMO_NON_ASCII_PROMPT = "微风吹过花园，花朵轻轻摇曳。"  # noqa: RUF001

# Three requests that exercise different paths: landscape with a locked camera, portrait with a last frame, a
# non-ASCII prompt (sent RFC 2047-encoded, as S3 metadata must be ASCII) with sound on a current 2.0 model (which
# takes no camera_fixed, so the locked camera is the 1.0 pro sample's).
DEMO_REQUESTS: dict[str, dict[str, str]] = {
    "sunset-hills.jpg": {
        "prompt": "The sun sinks slowly behind the hills while the sky turns violet.",
        "resolution": "480p",
        "ratio": "16:9",
        "duration": "5",
        "camerafixed": "true",
    },
    "night-city.jpg": {
        "prompt": "City lights flicker on under a moonlit sky; the camera rises gently.",
        "resolution": "480p",
        "ratio": "9:16",
        "return-last-frame": "true",
        "seed": "42",
    },
    "flower-garden.png": {
        "prompt": encode_metadata_text(DEMO_NON_ASCII_PROMPT),
        "resolution": "480p",
        "ratio": "1:1",
        # A current model with sound, so one demo video has an audio track.
        "model": "doubao-seedance-2-0-260128",
        "generate-audio": "true",
    },
}


# A small batch file (docs/batches.md): one row with two takes (two seeds), one with a non-ASCII prompt in plain
# UTF-8. Its images sit in a "_" folder beside it, so they make no job of their own.
DEMO_BATCH_NAME = "catalogue.csv"
DEMO_BATCH = (
    "id,image,prompt,resolution,ratio,duration,takes\n"
    "hills,_batch/sunset-hills.jpg,Clouds drift slowly over the hills.,480p,16:9,5,2\n"
    f"garden,_batch/flower-garden.png,{DEMO_NON_ASCII_PROMPT},480p,1:1,5,\n"
)


def planned_demo_uploads() -> list[PlannedUpload]:
    samples = resources.files(SAMPLES_PACKAGE).joinpath("samples")
    folder = f"{operator_tools.DEFAULT_INPUT_PREFIX}demo/"
    singles = [
        PlannedUpload(name, f"{folder}{name}", samples.joinpath(name).read_bytes(), meta)
        for name, meta in DEMO_REQUESTS.items()
    ]
    images = tuple(
        (f"{folder}_batch/{name}", samples.joinpath(name).read_bytes())
        for name in ("sunset-hills.jpg", "flower-garden.png")
    )
    batch = PlannedUpload(DEMO_BATCH_NAME, f"{folder}{DEMO_BATCH_NAME}", DEMO_BATCH.encode(), {}, images)
    return [*singles, batch]


def demo_command(args: argparse.Namespace, console: Console) -> int:
    return run_and_report(planned_demo_uploads(), args, console)
