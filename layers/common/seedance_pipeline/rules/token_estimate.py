"""What a clip costs in provider tokens, before it is made, and what the provider says it billed afterwards.

The provider bills about width x height x fps x frames / 1024 tokens (its own sample: a 480p 16:9 5 s clip is
864 x 480 x 121 / 1024 = 49,005). Output is 24 fps and a clip of `s` seconds carries 24 x s + 1 frames (5 s -> 121),
so the estimate uses frames = 24 x seconds + 1. Sizes come from the provider's output-size table below.

`adaptive` and `keep_ratio` follow the input image: the estimate takes the table's size for the listed ratio
nearest the image's own (compared on a log scale, so 2:1 and 1:2 are equally far from 1:1); without an image size
it takes the 16:9 size, the provider's default. keep_ratio keeps about the same pixel count as the fixed sizes, so
the nearest listed size is within a few percent of what it makes.
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
DEFAULT_RATIO = "16:9"
FOLLOWS_IMAGE = ("adaptive", "keep_ratio")


def frame_count(seconds: int) -> int:
    return FPS * seconds + 1


def nearest_ratio(image_width: int, image_height: int) -> str:
    target = math.log(image_width / image_height)
    ratios = OUTPUT_SIZES["720p"]
    return min(ratios, key=lambda r: abs(math.log(ratios[r][0] / ratios[r][1]) - target))


def output_size(resolution: str, ratio: str, image_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The table's (width, height) for the request; image-following ratios as the module docstring says."""
    sizes = OUTPUT_SIZES[resolution]
    if ratio in FOLLOWS_IMAGE:
        ratio = nearest_ratio(*image_size) if image_size and min(image_size) > 0 else DEFAULT_RATIO
    return sizes[ratio]


def estimate_tokens(
    resolution: str, ratio: str, duration_seconds: int, image_size: tuple[int, int] | None = None
) -> int:
    width, height = output_size(resolution, ratio, image_size)
    return round(width * height * frame_count(duration_seconds) * TOKENS_PER_PIXEL_FRAME)


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
