"""The provider's input-image rules, checked before any paid call (docs/provider-api.md, "Input image rules")."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from seedance_pipeline.errors import ErrorCode, InvalidInput

# Pillow's format names -> the provider's. A multi-picture JPEG (MPO, written by many cameras and phones) is a JPEG
# whose first picture every decoder reads. Pillow's "DIB" (a BMP without its file header) is left out on purpose:
# it is not a .bmp file and the provider's decoders are not promised to read it.
ALLOWED_FORMATS = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
}
_ALLOWED_LIST = "allowed: jpeg, png, webp, bmp, tiff, gif"
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
    with _decoding_boundary("the image's header is corrupt ({detail})"):
        image = Image.open(io.BytesIO(data))
    with image:
        fmt = ALLOWED_FORMATS.get(image.format or "")
        if fmt is None:
            raise InvalidInput(
                f"image format {image.format or 'unknown'} is not supported ({_ALLOWED_LIST})",
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
        # Decodes every byte, so a truncated or corrupt file fails here, not at the provider. The side limits above
        # bound this work to MAX_SIDE x MAX_SIDE pixels whatever the file claims to compress.
        with _decoding_boundary(f"the {fmt} image is truncated or corrupt ({{detail}})"):
            image.load()
    return ImageInfo(format=fmt, width=width, height=height, size_bytes=len(data))


@contextmanager
def _decoding_boundary(message: str) -> Iterator[None]:
    """Wraps only a Pillow call on uploaded bytes, and turns whatever it raises into a rejection.

    Pillow's plugins raise far more than OSError on hostile bytes (ValueError, SyntaxError, struct.error,
    EOFError, IndexError, KeyError, ZeroDivisionError, TypeError, ... depending on plugin and version), and no
    list of ours stays complete across upgrades; an exception that escapes makes Lambda retry the same bytes
    until the job times out with no reason. So at this one boundary, around third-party code only, anything
    is the file's fault, and the exception's type is kept in the message so a Pillow bug stays visible.
    MemoryError is not caught: with the pixel bound it says more about this process than about the file.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning is still a refusal here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError as exc:  # no plugin recognised the bytes at all
        raise InvalidInput(
            f"the object is not a readable image ({_ALLOWED_LIST})", code=ErrorCode.NOT_AN_IMAGE
        ) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            f"the image declares too many pixels ({exc}); width and height must each be between {MIN_SIDE} and "
            f"{MAX_SIDE} px",
            code=ErrorCode.IMAGE_DIMENSIONS,
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # deliberately broad: see the docstring (third-party decoder, hostile bytes)
        raise InvalidInput(message.format(detail=_describe(exc)), code=ErrorCode.CORRUPT_IMAGE) from exc


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
