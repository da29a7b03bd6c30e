"""Input images as the provider takes them: fetched (http/https) or decoded (data URL), then checked against its
rules (format, size, side lengths, aspect ratio) and decoded whole."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

import requests
from PIL import Image, UnidentifiedImageError

from .errors import invalid_parameter

MAX_IMAGE_BYTES = 30 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 300, 6000
MIN_ASPECT, MAX_ASPECT = 0.4, 2.5
# Pillow's names for the formats the provider accepts (MPO is how Pillow labels many camera JPEGs).
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF"}
DATA_URL_FORMATS = {"jpeg", "jpg", "png", "webp", "bmp", "tiff", "tif", "gif"}
_DATA_URL = re.compile(r"^data:image/([a-z]+);base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class InputImage:
    """A fetched, decoded and rule-checked input image. Width and height are the stored pixels' (an EXIF orientation
    is ignored, as the provider ignores it)."""

    data: bytes
    sha256: str
    format: str
    width: int
    height: int


def _fetch(url: str, field: str, timeout: float) -> bytes:
    # trust_env=False: the images usually live on a local moto S3, which a proxy from the environment cannot reach.
    with requests.Session() as session:
        session.trust_env = False
        try:
            with session.get(url, timeout=timeout, stream=True) as resp:
                if resp.status_code != 200:
                    raise invalid_parameter(field, f"the image could not be downloaded (HTTP {resp.status_code}).")
                data = bytearray()
                for chunk in resp.iter_content(256 * 1024):
                    data += chunk
                    # Stop reading as soon as the size rule is broken; the rest is not needed to say no.
                    if len(data) >= MAX_IMAGE_BYTES:
                        raise invalid_parameter(field, "the image must be smaller than 30 MB.")
                return bytes(data)
        except requests.Timeout:
            raise invalid_parameter(field, f"the image could not be downloaded within {timeout:g} s.") from None
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise invalid_parameter(field, f"the image could not be downloaded ({reason}).") from None


def _decode_data_url(ref: str, field: str) -> bytes:
    match = _DATA_URL.match(ref)
    if match is None:
        raise invalid_parameter(field, "a data URL must look like data:image/<format>;base64,<data>.")
    fmt, payload = match.groups()
    if fmt not in DATA_URL_FORMATS:
        raise invalid_parameter(field, f"unsupported image format {fmt!r} in the data URL.")
    # A base64 string of 30 MB decodes to ~22.5 MB; anything much longer cannot pass the size rule.
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        raise invalid_parameter(field, "the image must be smaller than 30 MB.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_parameter(field, "the data URL is not valid base64.") from None


def check_image(data: bytes, field: str) -> InputImage:
    """Apply the provider's image rules: format, size, side lengths and aspect ratio; and make sure it decodes."""
    if len(data) >= MAX_IMAGE_BYTES:
        raise invalid_parameter(field, "the image must be smaller than 30 MB.")
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        raise invalid_parameter(field, "the content is not a decodable image.") from None
    with img:
        fmt = img.format or ""
        if fmt not in ACCEPTED_FORMATS:
            raise invalid_parameter(
                field, f"image format {fmt or 'unknown'} is not supported (jpeg, png, webp, bmp, tiff, gif)."
            )
        width, height = img.size
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise invalid_parameter(
                field,
                f"image width and height must each be between {MIN_SIDE} and {MAX_SIDE} px (got {width}x{height}).",
            )
        aspect = width / height
        if not MIN_ASPECT <= aspect <= MAX_ASPECT:
            raise invalid_parameter(
                field, f"image width/height must be between {MIN_ASPECT} and {MAX_ASPECT} (got {aspect:.3f})."
            )
        try:
            img.load()  # the header alone does not prove the pixels decode (truncated uploads)
        except (OSError, SyntaxError, ValueError):
            raise invalid_parameter(field, "the image data is truncated or corrupt.") from None
        # An EXIF orientation is ignored, as the provider ignores it: the sides are the stored pixels'.
    return InputImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format="JPEG" if fmt == "MPO" else fmt,
        width=width,
        height=height,
    )


def load_image(ref: str, field: str, timeout: float = 10.0) -> InputImage:
    """Fetch (http/https) or decode (data URL) one image reference and check it against the rules."""
    if ref.startswith("data:"):
        data = _decode_data_url(ref, field)
    elif ref.startswith(("http://", "https://")):
        data = _fetch(ref, field, timeout)
    else:
        raise invalid_parameter(field, "must be an http(s) URL or a data:image/<format>;base64 URL.")
    return check_image(data, field)
