"""The provider's input-image rules, checked before any paid call (docs/provider-api.md, "Input image rules")."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from seedance_pipeline.errors import ErrorCode, InvalidInput

ALLOWED_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff", "GIF": "gif"}
MAX_IMAGE_BYTES = 30 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 300, 6000
MIN_ASPECT, MAX_ASPECT = 0.4, 2.5


class ImageInfo(BaseModel):
    format: str  # lower-case, as a data URL wants it
    width: int
    height: int
    size_bytes: int

    @property
    def mime_type(self) -> str:
        return f"image/{self.format}"


def check_size(size_bytes: int) -> None:
    """Cheap pre-check from the object's size, so a 2 GB upload is refused without reading it."""
    if size_bytes == 0:
        raise InvalidInput("the object is empty (0 bytes)", code=ErrorCode.EMPTY_IMAGE)
    if size_bytes >= MAX_IMAGE_BYTES:
        raise InvalidInput(
            f"the image is {size_bytes / 1024 / 1024:.1f} MB; the provider accepts images under 30 MB",
            code=ErrorCode.IMAGE_TOO_LARGE,
        )


def inspect_image(data: bytes) -> ImageInfo:
    check_size(len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            "the object is not a readable image (allowed: jpeg, png, webp, bmp, tiff, gif)",
            code=ErrorCode.NOT_AN_IMAGE,
        ) from exc
    with image:
        fmt = ALLOWED_FORMATS.get(image.format or "")
        if fmt is None:
            raise InvalidInput(
                f"image format {image.format or 'unknown'} is not supported (allowed: jpeg, png, webp, bmp, tiff, gif)",
                code=ErrorCode.UNSUPPORTED_FORMAT,
            )
        width, height = image.size
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise InvalidInput(
                f"the image is {width}x{height} px; width and height must each be between {MIN_SIDE} and {MAX_SIDE} px",
                code=ErrorCode.IMAGE_DIMENSIONS,
            )
        aspect = width / height
        if not (MIN_ASPECT <= aspect <= MAX_ASPECT):
            raise InvalidInput(
                f"the image's width/height is {aspect:.2f} ({width}x{height}); it must be between "
                f"{MIN_ASPECT} and {MAX_ASPECT}",
                code=ErrorCode.IMAGE_ASPECT_RATIO,
            )
        try:
            image.load()  # decodes every byte: a truncated or corrupt file fails here, not at the provider
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidInput(
                f"the {fmt} image is truncated or corrupt ({exc})", code=ErrorCode.CORRUPT_IMAGE
            ) from exc
    return ImageInfo(format=fmt, width=width, height=height, size_bytes=len(data))
