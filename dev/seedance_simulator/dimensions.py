"""Output frame sizes for a (resolution, ratio) pair, as the upstream Seedance 1.0 models produce them.

The fixed-ratio table is the one the provider documents; every entry is a multiple of 16 (the H.264
macroblock size) so the encoder never pads. `adaptive` and `keep_ratio` follow the input image.
"""

from __future__ import annotations

import math

RESOLUTIONS: tuple[str, ...] = ("480p", "720p", "1080p")
FIXED_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21")
IMAGE_RATIOS: tuple[str, ...] = ("keep_ratio", "adaptive")
RATIOS: tuple[str, ...] = FIXED_RATIOS + IMAGE_RATIOS

# (width, height) for the landscape ratios and 1:1; portrait ratios are these transposed.
_LANDSCAPE: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {"21:9": (960, 416), "16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640)},
    "720p": {"21:9": (1504, 640), "16:9": (1248, 704), "4:3": (1120, 832), "1:1": (960, 960)},
    "1080p": {"21:9": (2176, 928), "16:9": (1920, 1088), "4:3": (1664, 1248), "1:1": (1440, 1440)},
}
_PORTRAIT_OF = {"9:21": "21:9", "9:16": "16:9", "3:4": "4:3"}

FPS = 24


def frame_count(duration_seconds: int) -> int:
    """Upstream clips carry one extra frame: 5 s -> 121 frames, 10 s -> 241 frames."""
    return duration_seconds * FPS + 1


def _ratio_value(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)


def fixed_size(resolution: str, ratio: str) -> tuple[int, int]:
    """Size for one of the listed fixed ratios."""
    table = _LANDSCAPE[resolution]
    if ratio in _PORTRAIT_OF:
        w, h = table[_PORTRAIT_OF[ratio]]
        return h, w
    return table[ratio]


def nearest_ratio(image_width: int, image_height: int) -> str:
    """The listed ratio closest to the image's own, compared on a log scale so 2:1 and 1:2 are symmetric."""
    target = math.log(image_width / image_height)
    return min(FIXED_RATIOS, key=lambda r: abs(math.log(_ratio_value(r)) - target))


def _round16(value: float) -> int:
    return max(16, round(value / 16.0) * 16)


def keep_ratio_size(resolution: str, image_width: int, image_height: int) -> tuple[int, int]:
    """The image's ratio at the pixel budget of the 16:9 size for this resolution, both sides multiples of 16."""
    budget_w, budget_h = _LANDSCAPE[resolution]["16:9"]
    pixels = budget_w * budget_h
    r = image_width / image_height
    return _round16(math.sqrt(pixels * r)), _round16(math.sqrt(pixels / r))


def output_size(resolution: str, ratio: str, image_width: int, image_height: int) -> tuple[int, int]:
    """The (width, height) of the video the provider would return for this request and image."""
    if resolution not in _LANDSCAPE:
        raise ValueError(f"unknown resolution {resolution!r}")
    if ratio == "adaptive":
        return fixed_size(resolution, nearest_ratio(image_width, image_height))
    if ratio == "keep_ratio":
        return keep_ratio_size(resolution, image_width, image_height)
    if ratio not in FIXED_RATIOS:
        raise ValueError(f"unknown ratio {ratio!r}")
    return fixed_size(resolution, ratio)
