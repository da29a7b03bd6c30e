"""Small real images made on the fly, so tests never depend on binary fixtures."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def image_bytes(
    width: int = 640, height: int = 480, fmt: str = "JPEG", color: tuple[int, int, int] = (40, 120, 200)
) -> bytes:
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    for step in range(0, min(width, height) // 2, 24):
        draw.ellipse((step, step, width - step, height - step), outline=(255 - step % 255, 200, step % 255), width=6)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
