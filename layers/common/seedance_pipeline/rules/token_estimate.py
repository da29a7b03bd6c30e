"""What a clip costs in provider tokens, before it is made, and what the provider says it billed afterwards.

The provider bills about width x height x fps x frames / 1024 tokens (its own sample: a 480p 16:9 5 s clip is
864 x 480 x 121 / 1024 = 49,005). Output is 24 fps and a clip of `s` seconds carries 24 x s + 1 frames (5 s -> 121),
so the estimate uses frames = 24 x seconds + 1. Sizes come from the provider's output-size table below.

The estimate errs high, never low, so a budget is not overshot (tests/unit/test_token_estimate_bound.py holds it
to the simulator's bill for every resolution, ratio and accepted image shape):

- `adaptive` follows the input image: the provider picks the listed ratio nearest the image's by the NOMINAL
  ratios (21:9 is 2.333), not by the table's pixel ratios (1504 x 640 is 2.35); near the middle of two ratios the
  two readings differ, so the estimate takes the larger of the two sizes.
- `keep_ratio` keeps the image's own ratio at about the 16:9 size's pixel count, each side a multiple of 16: the
  estimate rounds each side up to 16, an upper bound of any rounding.
- Without an image size, an image-following ratio takes the largest size of the resolution.
- `duration: -1` (the model picks) takes the model's longest duration (`longest_seconds`).
- Tokens round up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

FPS = 24
TOKENS_PER_PIXEL_FRAME = 1 / 1024

# (width, height) per resolution and ratio, as the provider documents them (24 fps H.264).
OUTPUT_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {
        "21:9": (960, 416),
        "16:9": (864, 480),
        "4:3": (736, 544),
        "1:1": (640, 640),
        "3:4": (544, 736),
        "9:16": (480, 864),
        "9:21": (416, 960),
    },
    "720p": {
        "21:9": (1504, 640),
        "16:9": (1248, 704),
        "4:3": (1120, 832),
        "1:1": (960, 960),
        "3:4": (832, 1120),
        "9:16": (704, 1248),
        "9:21": (640, 1504),
    },
    "1080p": {
        "21:9": (2176, 928),
        "16:9": (1920, 1088),
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1088, 1920),
        "9:21": (928, 2176),
    },
}
KEEP_RATIO_BUDGET = "16:9"
FOLLOWS_IMAGE = ("adaptive", "keep_ratio")
# The longest clip any catalogue model makes: what `duration: -1` is estimated at when the model's own longest is
# not given (rules/model_rows.py: 2.5 makes up to 30 s).
LONGEST_SECONDS = 30
_SIDE_STEP = 16


def frame_count(seconds: int) -> int:
    return FPS * seconds + 1


def _nominal(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def _nearest(target: float, ratios: dict[str, float]) -> str:
    return min(ratios, key=lambda r: abs(math.log(ratios[r]) - math.log(target)))


def nearest_ratios(image_width: int, image_height: int) -> set[str]:
    """The listed ratio nearest the image's, by the nominal ratios (the provider's reading) and by the table's pixel
    ratios: one ratio, or the two an image between them could be given."""
    target = image_width / image_height
    sizes = OUTPUT_SIZES["720p"]
    return {
        _nearest(target, {r: _nominal(r) for r in sizes}),
        _nearest(target, {r: w / h for r, (w, h) in sizes.items()}),
    }


def _up(value: float) -> int:
    return max(_SIDE_STEP, math.ceil(value / _SIDE_STEP) * _SIDE_STEP)


def keep_ratio_bound(resolution: str, image_width: int, image_height: int) -> tuple[int, int]:
    """The image's ratio at the 16:9 size's pixel count, each side rounded UP to a multiple of 16."""
    width, height = OUTPUT_SIZES[resolution][KEEP_RATIO_BUDGET]
    ratio = image_width / image_height
    return _up(math.sqrt(width * height * ratio)), _up(math.sqrt(width * height / ratio))


def output_size(resolution: str, ratio: str, image_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (width, height) the estimate bills: the table's size, or for image-following ratios the largest size
    the provider could make (the module docstring says how)."""
    sizes = OUTPUT_SIZES[resolution]
    if ratio not in FOLLOWS_IMAGE:
        return sizes[ratio]
    if not image_size or min(image_size) <= 0:
        candidates = list(sizes.values())
        if ratio == "keep_ratio":
            candidates += [keep_ratio_bound(resolution, *shape) for shape in ((5, 2), (2, 5))]
    elif ratio == "adaptive":
        candidates = [sizes[r] for r in nearest_ratios(*image_size)]
    else:
        candidates = [keep_ratio_bound(resolution, *image_size)]
    return max(candidates, key=lambda size: size[0] * size[1])


def estimate_tokens(
    resolution: str,
    ratio: str,
    duration_seconds: int,
    image_size: tuple[int, int] | None = None,
    *,
    longest_seconds: int | None = None,
) -> int:
    """Tokens the clip may cost, rounded up; `duration_seconds` -1 (the model picks) counts as `longest_seconds`."""
    if duration_seconds < 1:
        duration_seconds = longest_seconds or LONGEST_SECONDS
    width, height = output_size(resolution, ratio, image_size)
    return math.ceil(width * height * frame_count(duration_seconds) * TOKENS_PER_PIXEL_FRAME)


def billed_tokens(usage: Mapping[str, Any] | None) -> int | None:
    """The provider's own count: total_tokens, else completion_tokens (video models bill no prompt tokens)."""
    if not usage:
        return None
    for key in ("total_tokens", "completion_tokens"):
        value = usage.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return None


def utc_day(timestamp: float) -> str:
    """The UTC calendar day a budget counts in, as YYYY-MM-DD."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def next_utc_day_at(timestamp: float) -> float:
    """Epoch seconds of the next UTC midnight after `timestamp`: when a daily budget starts again."""
    day = datetime.fromtimestamp(timestamp, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()
