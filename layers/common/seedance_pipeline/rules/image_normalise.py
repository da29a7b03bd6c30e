"""Repairs for photos as people upload them, so the provider receives what the person saw.

Phones write HEIC/HEIF, which the provider's documented formats do not include; they store pixels sideways and
set an EXIF orientation, which the provider ignores; cameras write images over the provider's 6000 px and 30 MB
limits. Each repair is recorded as an InputChange, which the job record and the sidecar carry as
`input_changes` (docs/provider-api.md, "Photos as uploaded"). The checks themselves live in rules/image_rules.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pi_heif
from PIL import Image

from seedance_pipeline.errors import ErrorCode, InvalidInput

# pi-heif (pillow-heif's decode-only build: the layer never encodes HEIF) teaches Pillow to open HEIC/HEIF files;
# Image.open reports them as "HEIF". Thumbnails are not read: only the primary image is ever sent.
pi_heif.register_heif_opener(thumbnails=False)
HEIF_FORMAT = "HEIF"
# The ftyp brands of HEVC-coded HEIF, which phones name .heic; other brands are reported as plain heif.
_HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs")
JPEG_QUALITY = 90
EXIF_ORIENTATION_TAG = 0x0112
# The same table PIL.ImageOps.exif_transpose applies (orientations 2, 4, 5 and 7 also mirror). It is applied here
# to the scaled copy, whose EXIF is gone, so the full-size pixels are never copied just to be turned;
# tests/unit/test_image_normalise.py checks it against exif_transpose for all eight orientations.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class InputChange:
    """One repair: `what` is converted, rotated, scaled or recompressed; `details` what it changed."""

    what: str
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"what": self.what, **self.details}


@dataclass(frozen=True)
class Normalised:
    data: bytes
    size: tuple[int, int]
    changes: list[InputChange]


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when it has none or a value outside 1-8."""
    value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size as the image is displayed: orientations 5-8 turn it by 90 degrees."""
    return (stored[1], stored[0]) if orientation in _SWAPS_SIDES else stored


def fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled down (never up), keeping its aspect ratio, so that neither side is over max_side."""
    width, height = size
    longer = max(width, height)
    if longer <= max_side:
        return size
    scale = max_side / longer
    return (min(max_side, max(1, round(width * scale))), min(max_side, max(1, round(height * scale))))


def draft_reduction(size: tuple[int, int], max_pixels: int) -> int:
    """The smallest JPEG decode reduction (1, 2, 4 or 8) that brings `size` within max_pixels; 8 at most."""
    for reduction in (1, 2, 4):
        if size[0] * size[1] <= max_pixels * reduction * reduction:
            return reduction
    return 8


def heif_kind(data: bytes) -> str:
    """heic for HEVC-coded HEIF (what phones write), heif otherwise: only named in the change record."""
    return "heic" if data[8:12] in _HEIC_BRANDS else "heif"


def normalise(
    image: Image.Image,
    *,
    stored: tuple[int, int],
    orientation: int,
    target: tuple[int, int],
    scale_reasons: list[str],
    max_bytes: int,
    min_side: int,
    source_name: str,
    source_bytes: int,
) -> Normalised:
    """The image as a JPEG the provider takes: scaled to `target` (in its stored orientation; `scale_reasons` say
    why), turned upright, and scaled down further while the JPEG is still `max_bytes` or more. `stored` is the
    file's own size (a JPEG draft may have decoded `image` smaller). Decoder errors propagate: the caller wraps
    this in image_rules.decoding_boundary."""
    # Memory, not speed, sets this order. Pillow holds RGB at 4 bytes a pixel, so 64 MP decoded is 256 MB; scaling
    # it adds about 280 MB (an intermediate pass and the result). Flattening to RGB first and releasing each
    # full-size copy as soon as the next exists keeps the peak there (measured: 63 MP RGBA ~540 MB above the
    # process, where scaling in RGBA, which Pillow premultiplies into yet another copy, took ~780 MB).
    work = _rgb(image)
    if work is not image:
        image.close()  # frees the decoded pixels (the caller's `with` only closes the file)
    if work.size != target:
        scaled = work.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        work.close()
        work = scaled
    if orientation in _TRANSPOSE:
        work = work.transpose(_TRANSPOSE[orientation])
    data = _jpeg(work)
    scaled_for_bytes = False
    while len(data) >= max_bytes:
        factor = min(0.9, (max_bytes / len(data)) ** 0.5 * 0.95)
        smaller = (round(work.size[0] * factor), round(work.size[1] * factor))
        if min(smaller) < min_side:
            raise InvalidInput(
                f"the image cannot be brought under {_mb(max_bytes)} as a JPEG without making a side "
                f"shorter than {min_side} px",
                code=ErrorCode.IMAGE_TOO_LARGE,
            )
        work = work.resize(smaller, Image.Resampling.LANCZOS)
        data = _jpeg(work)
        scaled_for_bytes = True

    changes: list[InputChange] = []
    if source_name != "jpeg":
        changes.append(InputChange("converted", {"from": source_name, "to": "jpeg"}))
    if orientation != 1:
        changes.append(InputChange("rotated", {"exif_orientation": orientation}))
    if target != stored or scaled_for_bytes:
        reasons = list(scale_reasons)
        if scaled_for_bytes:
            reasons.append(f"the JPEG was still {_mb(max_bytes)} or more")
        before = upright_size(stored, orientation)
        changes.append(
            InputChange("scaled", {"from": list(before), "to": list(work.size), "reason": "; ".join(reasons)})
        )
    if source_bytes >= max_bytes:
        changes.append(InputChange("recompressed", {"from_bytes": source_bytes, "to_bytes": len(data)}))
    return Normalised(data=data, size=work.size, changes=changes)


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 1024 / 1024:.3g} MB"


def _rgb(image: Image.Image) -> Image.Image:
    """The pixels as RGB: transparency over white (JPEG has none; black would show through where it was)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # no full-size copy of an RGBA image
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB") if image.mode != "RGB" else image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
