"""Regenerate the demo's sample images: `python dev/seedance_local/make_samples.py`.

The pictures are drawn with Pillow from code (no stock photos, nothing to license), from a fixed random seed,
so a re-run writes the same scenes. Each file stays under 80 KB: the demo uploads them on every run and they
live in the repository.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
MAX_SAMPLE_BYTES = 80 * 1024

RGB = tuple[int, int, int]


def _blend(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _vertical_gradient(size: tuple[int, int], stops: list[tuple[float, RGB]]) -> Image.Image:
    """A sky: colours at fractional heights, linearly blended in between."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        for (t0, c0), (t1, c1) in itertools.pairwise(stops):
            if t0 <= t <= t1:
                draw.line([(0, y), (width, y)], fill=_blend(c0, c1, (t - t0) / max(1e-9, t1 - t0)))
                break
    return image


def sunset_over_hills(rng: random.Random) -> Image.Image:
    width, height = 1280, 720
    image = _vertical_gradient(
        (width, height),
        [(0.0, (40, 30, 90)), (0.35, (200, 80, 90)), (0.55, (250, 170, 80)), (1.0, (250, 200, 120))],
    )
    draw = ImageDraw.Draw(image)
    sun_x, sun_y, sun_r = 820, 400, 70
    for glow in range(5, 0, -1):  # soft halo first, then the disc
        r = sun_r + glow * 18
        draw.ellipse(
            (sun_x - r, sun_y - r, sun_x + r, sun_y + r), fill=_blend((250, 170, 80), (255, 220, 150), 1 / glow)
        )
    draw.ellipse((sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r), fill=(255, 236, 180))
    # Three ranges of hills, darker as they come closer.
    for layer, colour in enumerate([(150, 80, 100), (90, 50, 80), (40, 25, 50)]):
        base = 430 + layer * 90
        phase, wavelength, amplitude = rng.uniform(0, math.tau), rng.uniform(260, 420), 40 + layer * 15
        outline = [(x, base - amplitude * math.sin(x / wavelength * math.tau + phase)) for x in range(0, width + 1, 8)]
        draw.polygon([*outline, (width, height), (0, height)], fill=colour)
    return image.filter(ImageFilter.SMOOTH)


def night_city_skyline(rng: random.Random) -> Image.Image:
    width, height = 720, 1280
    image = _vertical_gradient((width, height), [(0.0, (5, 8, 30)), (0.6, (25, 30, 80)), (1.0, (60, 40, 90))])
    draw = ImageDraw.Draw(image)
    for _ in range(120):
        x, y = rng.randrange(width), rng.randrange(int(height * 0.55))
        draw.point((x, y), fill=(230, 230, 255))
    draw.ellipse((520, 140, 610, 230), fill=(245, 240, 210))  # the moon
    x = 0
    while x < width:
        building_width = rng.randrange(60, 130)
        top = rng.randrange(560, 1000)
        draw.rectangle((x, top, x + building_width, height), fill=_blend((15, 15, 35), (35, 30, 60), rng.random()))
        for wy in range(top + 14, height - 20, 26):  # lit windows, a random third of them
            for wx in range(x + 10, x + building_width - 14, 20):
                if rng.random() < 0.33:
                    draw.rectangle((wx, wy, wx + 8, wy + 12), fill=(255, 210, 120))
        x += building_width + rng.randrange(0, 12)
    return image


def flower_garden(rng: random.Random) -> Image.Image:
    size = 900
    image = _vertical_gradient((size, size), [(0.0, (140, 200, 250)), (0.35, (200, 230, 250)), (0.36, (70, 140, 60)),
                                              (1.0, (40, 100, 40))])  # fmt: skip
    draw = ImageDraw.Draw(image)
    petals = [(230, 60, 90), (250, 200, 60), (240, 120, 200), (250, 250, 250), (150, 90, 220)]
    # Far flowers first and small, near ones last and large: a cheap sense of depth.
    for _ in range(140):
        y = rng.uniform(340, 880)
        scale = 0.4 + (y - 340) / 540 * 1.2
        x = rng.uniform(0, size)
        stem = 30 * scale
        draw.line([(x, y), (x, y + stem)], fill=(30, 90, 30), width=max(1, round(3 * scale)))
        colour, radius = rng.choice(petals), 9 * scale
        for k in range(5):
            angle = k / 5 * math.tau
            px, py = x + math.cos(angle) * radius, y + math.sin(angle) * radius
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=colour)
        draw.ellipse((x - radius * 0.6, y - radius * 0.6, x + radius * 0.6, y + radius * 0.6), fill=(250, 210, 40))
    # A palette keeps the PNG small; the scene has few distinct colours anyway.
    return image.quantize(colors=64, dither=Image.Dither.NONE)


# file name -> (drawing function, Pillow save options)
SAMPLES: dict[str, tuple[Callable[[random.Random], Image.Image], dict[str, object]]] = {
    "sunset-hills.jpg": (sunset_over_hills, {"format": "JPEG", "quality": 80, "optimize": True}),
    "night-city.jpg": (night_city_skyline, {"format": "JPEG", "quality": 75, "optimize": True}),
    "flower-garden.png": (flower_garden, {"format": "PNG", "optimize": True}),
}


def make_samples(directory: Path = SAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, (draw, options)) in enumerate(SAMPLES.items()):
        path = directory / name
        draw(random.Random(20250831 + index)).save(path, **options)  # type: ignore[arg-type]
        size = path.stat().st_size
        if size >= MAX_SAMPLE_BYTES:
            raise SystemExit(f"{path} is {size} bytes; samples must stay under {MAX_SAMPLE_BYTES}")
        written.append(path)
    return written


if __name__ == "__main__":
    for sample in make_samples():
        print(f"{sample} ({sample.stat().st_size // 1024} KB)")
