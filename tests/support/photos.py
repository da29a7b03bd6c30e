"""Photos as phones and cameras write them, made on the fly (no binary fixtures): HEIC, EXIF-rotated JPEGs,
images over the provider's side and byte limits."""

from __future__ import annotations

import io
import os

import pillow_heif
from PIL import Image

EXIF_ORIENTATION = 0x0112
# Four solid quadrants, so where each one lands shows how the picture was turned even after JPEG coding.
QUADRANT_COLOURS = ((220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 40))


def quadrants(width: int, height: int) -> Image.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    for (x, y), colour in zip([(0, 0), (1, 0), (0, 1), (1, 1)], QUADRANT_COLOURS, strict=True):
        image.paste(colour, (x * half_w, y * half_h, width if x else half_w, height if y else half_h))
    return image


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored width x height whose EXIF says how to turn it for display (6: 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    quadrants(width, height).save(buffer, format="JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def heic_bytes(width: int, height: int) -> bytes:
    """A real HEIC (HEVC-coded HEIF, what phones write), encoded by pillow-heif's libheif."""
    heif = pillow_heif.from_pillow(quadrants(width, height))
    buffer = io.BytesIO()
    heif.save(buffer, quality=80)
    return buffer.getvalue()


def solid_jpeg(width: int, height: int) -> bytes:
    """A large JPEG that stays small on disk (one colour plus a corner mark): for the side limit, not the byte one."""
    return _encode(quadrants(width, height), "JPEG")


def noise_png(width: int, height: int) -> bytes:
    """Random pixels, which PNG cannot compress: width x height x 3 bytes and a little more."""
    return _encode(Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)), "PNG")


def colour_at(data: bytes, x_fraction: float, y_fraction: float) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return tuple(rgb.getpixel((int(rgb.width * x_fraction), int(rgb.height * y_fraction))))  # type: ignore[arg-type]


def near(actual: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
