"""The provider's input-image rules, checked before any paid call (docs/provider-api.md, "Input image rules"),
and the few repairs that turn a photo as people upload it into one the provider takes (rules/image_normalise.py).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules import image_normalise
from seedance_pipeline.rules.image_normalise import HEIF_FORMAT, InputChange

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
_ALLOWED_LIST = "allowed: jpeg, png, webp, bmp, tiff, gif, and heic/heif (sent as jpeg)"
# What the provider takes (sent bytes)...
MAX_IMAGE_BYTES = 30 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 300, 6000
MIN_ASPECT, MAX_ASPECT = 0.4, 2.5
# ...and what an upload may be: bigger files and sides are scaled down, within these bounds. The upload is held
# in memory while it is decoded: the bounds keep one image, its pixels and their scaled copy well inside the
# submit function's 1,024 MB (template.yaml) after the process's own ~150 MB.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# A repaired image travels inside the request as base64 (job_inputs.image_urls), a third larger than the file.
# No Seedance document gives a body limit; gateways document 10 MB images, so that is the stricter bound kept
# for a repaired JPEG (a 6000x4000 photo at quality 90 is usually 3-8 MB, so this rarely scales further).
MAX_INLINE_BYTES = 10 * 1024 * 1024
# Pixels decoded in full: a 48-50 MP phone photo (8064x6048, 8160x6120) and a 9000x7000 scan fit. Pillow holds
# RGB and RGBA at 4 bytes a pixel (256 MB here) and scaling adds about 280 MB: a 63 MP image peaked ~540 MB above
# the process (image_normalise.normalise), which with the upload's bytes stays inside the submit function's
# 1,024 MB. A larger JPEG, up to Pillow's decompression-bomb guard (about 89 MP, a refusal here even where Pillow
# only warns), is decoded at 1/2 scale instead (Pillow's draft); other formats over the bound are refused.
MAX_DECODED_PIXELS = 64_000_000


class ImageInfo(BaseModel):
    format: str  # lower-case, as a data URL wants it
    width: int
    height: int
    size_bytes: int

    @property
    def mime_type(self) -> str:
        return f"image/{self.format}"


class PreparedImage(BaseModel):
    """An upload made ready to send: `data` is the upload itself when nothing had to change, else a new JPEG."""

    data: bytes
    info: ImageInfo
    changes: list[InputChange] = Field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def check_size(size_bytes: int) -> None:
    """Cheap pre-check from the object's size, so a 2 GB upload is refused without reading it."""
    if size_bytes == 0:
        raise InvalidInput("the object is empty (0 bytes)", code=ErrorCode.EMPTY_IMAGE)
    if size_bytes > MAX_UPLOAD_BYTES:
        raise InvalidInput(
            f"the image is {size_bytes / 1024 / 1024:.1f} MB; uploads up to {MAX_UPLOAD_BYTES // 1024 // 1024} MB "
            "are read (and scaled down under the provider's 30 MB)",
            code=ErrorCode.IMAGE_TOO_LARGE,
        )


def inspect_image(data: bytes) -> ImageInfo:
    """What the provider would receive for this upload (see prepare_image); raises InvalidInput if nothing."""
    return prepare_image(data).info


def prepare_image(data: bytes) -> PreparedImage:
    """Check an upload and, where needed, repair it for the provider, recording each change.

    HEIC/HEIF is decoded and sent as JPEG; an EXIF orientation other than 1 is applied to the pixels (the provider
    ignores the tag); an image whose longer side is over 6000 px, or whose file is 30 MB or more, is scaled down
    keeping its aspect ratio. Anything else the provider would refuse (too small, too narrow, not an image, corrupt)
    is refused here, before any paid call. Every failure is an InvalidInput.
    """
    check_size(len(data))
    with decoding_boundary("the image's header is corrupt ({detail})"):
        image = Image.open(io.BytesIO(data))
    with image:
        source_format = image.format or ""
        if source_format != HEIF_FORMAT and source_format not in ALLOWED_FORMATS:
            raise InvalidInput(
                f"image format {source_format or 'unknown'} is not supported ({_ALLOWED_LIST})",
                code=ErrorCode.UNSUPPORTED_FORMAT,
            )
        source = _source_name(source_format, data)
        stored = image.size
        # Bounded before anything decodes (reading a PNG's EXIF decodes it): a JPEG over the bound is decoded at
        # 1/2, 1/4 or 1/8 scale instead (Pillow's draft), other formats are refused.
        reduction = image_normalise.draft_reduction(stored, MAX_DECODED_PIXELS)
        if reduction > 1 and source_format in ("JPEG", "MPO"):
            with decoding_boundary(f"the {source} image's header is corrupt ({{detail}})"):
                image.draft("RGB", (-(-stored[0] // reduction), -(-stored[1] // reduction)))
        decoded = image.size
        if decoded[0] * decoded[1] > MAX_DECODED_PIXELS:
            raise InvalidInput(
                f"the image is {stored[0]}x{stored[1]} px ({stored[0] * stored[1] / 1e6:.0f} MP); images up to "
                f"{MAX_DECODED_PIXELS / 1e6:.0f} MP (JPEG: up to Pillow's decompression-bomb limit) are scaled down, "
                "larger ones are refused",
                code=ErrorCode.IMAGE_DIMENSIONS,
            )
        with decoding_boundary(f"the {source} image is truncated or corrupt ({{detail}})"):
            orientation = image_normalise.exif_orientation(image)
        _check_shape(image_normalise.upright_size(stored, orientation), upload_limits=True)
        target = image_normalise.fitted_size(decoded, MAX_SIDE)
        if not (source_format == HEIF_FORMAT or orientation != 1 or target != stored or len(data) >= MAX_IMAGE_BYTES):
            # Decodes every byte, so a truncated or corrupt file fails here, not at the provider. The side limits
            # above bound this work to MAX_SIDE x MAX_SIDE pixels whatever the file claims to compress.
            with decoding_boundary(f"the {source} image is truncated or corrupt ({{detail}})"):
                image.load()
            info = ImageInfo(format=source, width=stored[0], height=stored[1], size_bytes=len(data))
            return PreparedImage(data=data, info=info)
        reasons = [f"a side was over {MAX_SIDE} px"] if max(stored) > MAX_SIDE else []
        if decoded != stored:
            reasons.append(f"over {MAX_DECODED_PIXELS / 1e6:.0f} MP: decoded at 1/{reduction} scale")
        with decoding_boundary(f"the {source} image is truncated or corrupt ({{detail}})"):
            result = image_normalise.normalise(
                image,
                stored=stored,
                orientation=orientation,
                target=target,
                scale_reasons=reasons,
                max_bytes=MAX_INLINE_BYTES,
                min_side=MIN_SIDE,
                source_name=source,
                source_bytes=len(data),
            )
    _check_shape(result.size, upload_limits=False)
    width, height = result.size
    return PreparedImage(
        data=result.data,
        info=ImageInfo(format="jpeg", width=width, height=height, size_bytes=len(result.data)),
        changes=result.changes,
    )


def _source_name(source_format: str, data: bytes) -> str:
    if source_format == HEIF_FORMAT:
        return image_normalise.heif_kind(data)
    return ALLOWED_FORMATS.get(source_format, source_format.lower())


def _check_shape(size: tuple[int, int], *, upload_limits: bool) -> None:
    """The provider's side and aspect rules. On an upload (`upload_limits`) a side over MAX_SIDE is allowed: it
    is scaled down; a side under MIN_SIDE never is (scaling up invents pixels)."""
    width, height = size
    too_big = width > MAX_SIDE or height > MAX_SIDE
    if width < MIN_SIDE or height < MIN_SIDE or (too_big and not upload_limits):
        raise InvalidInput(
            f"the image is {width}x{height} px; width and height must each be between {MIN_SIDE} and {MAX_SIDE} px"
            + (" (larger images are scaled down)" if upload_limits else ""),
            code=ErrorCode.IMAGE_DIMENSIONS,
        )
    aspect = width / height
    if not (MIN_ASPECT <= aspect <= MAX_ASPECT):
        raise InvalidInput(
            f"the image's width/height is {aspect:.2f} ({width}x{height}); it must be between "
            f"{MIN_ASPECT} and {MAX_ASPECT}",
            code=ErrorCode.IMAGE_ASPECT_RATIO,
        )


def changes_record(key: str, changes: list[InputChange]) -> list[dict[str, Any]]:
    """The job record's and sidecar's `input_changes` entries for one image (docs: "Photos as uploaded")."""
    return [{"key": key, **change.record()} for change in changes]


@contextmanager
def decoding_boundary(message: str) -> Iterator[None]:
    """Wraps only decoder calls on uploaded bytes, and turns whatever they raise into a rejection.

    Pillow's plugins (and pillow-heif's libheif) raise far more than OSError on hostile bytes (ValueError,
    SyntaxError, struct.error, EOFError, IndexError, KeyError, ZeroDivisionError, TypeError, RuntimeError, ...
    depending on plugin and version), and no list of ours stays complete across upgrades; an exception that escapes
    makes Lambda retry the same bytes until the job times out with no reason. So at this one boundary, around
    third-party code only, anything is the file's fault, and the exception's type is kept in the message so a
    decoder bug stays visible. An InvalidInput raised inside (our own check) passes through unchanged.
    MemoryError is not caught: with the pixel bound it says more about this process than about the file.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning is still a refusal here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InvalidInput:
        raise
    except UnidentifiedImageError as exc:  # no plugin recognised the bytes at all
        raise InvalidInput(
            f"the object is not a readable image ({_ALLOWED_LIST})", code=ErrorCode.NOT_AN_IMAGE
        ) from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidInput(
            f"the image declares too many pixels ({exc}); images up to {MAX_DECODED_PIXELS / 1e6:.0f} MP are "
            "scaled down, larger ones are refused",
            code=ErrorCode.IMAGE_DIMENSIONS,
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # deliberately broad: see the docstring (third-party decoder, hostile bytes)
        raise InvalidInput(message.format(detail=_describe(exc)), code=ErrorCode.CORRUPT_IMAGE) from exc


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
