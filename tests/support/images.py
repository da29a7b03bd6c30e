"""Small real images made on the fly, so tests never depend on binary fixtures."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

from PIL import Image, ImageDraw

# Every format the image check accepts, by the name Pillow reports for it ("MPO": a multi-picture JPEG).
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF")


def image_bytes(
    width: int = 640, height: int = 480, fmt: str = "JPEG", color: tuple[int, int, int] = (40, 120, 200)
) -> bytes:
    image = _drawn(width, height, color)
    buffer = io.BytesIO()
    if fmt == "MPO":
        # Pillow writes a plain JPEG for one frame; a camera's MPO carries a second picture after the first.
        image.save(buffer, format="MPO", save_all=True, append_images=[_drawn(width, height, (200, 60, 20))])
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def _drawn(width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    for step in range(0, min(width, height) // 2, 24):
        draw.ellipse((step, step, width - step, height - step), outline=(255 - step % 255, 200, step % 255), width=6)
    return image


@cache
def smallest_valid_image(fmt: str) -> bytes:
    """The smallest image of `fmt` the provider's rules allow (300x300), built once: seed bytes for mutation."""
    return image_bytes(300, 300, fmt)


def headerless_bmp() -> bytes:
    """Pillow's "DIB": a BMP without its 14-byte file header (what the Windows clipboard holds)."""
    buffer = io.BytesIO()
    Image.new("RGB", (400, 400), (10, 20, 30)).save(buffer, format="DIB")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a tiny body: a decompression bomb as a decoder first sees it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
