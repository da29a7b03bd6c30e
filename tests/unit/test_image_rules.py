import io
import struct

import pytest
from PIL import Image, PngImagePlugin

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.image_rules import check_size, inspect_image
from seedance_pipeline.rules.video_request import data_url
from tests.support.images import headerless_bmp, image_bytes, png_declaring
from tests.support.photos import quadrants


def test_a_good_jpeg_is_described():
    info = inspect_image(image_bytes(640, 480))
    assert (info.format, info.width, info.height) == ("jpeg", 640, 480)
    assert info.mime_type == "image/jpeg"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_allowed_format_passes(fmt):
    assert inspect_image(image_bytes(400, 400, fmt)).format == fmt.lower()


def test_a_multi_picture_jpeg_from_a_camera_is_a_jpeg_and_is_sent_as_one():
    data = image_bytes(640, 480, "MPO")
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "MPO"  # what Pillow calls it; the provider knows it as a JPEG
    info = inspect_image(data)
    assert (info.format, info.mime_type) == ("jpeg", "image/jpeg")
    assert data_url(data, info.format).startswith("data:image/jpeg;base64,")


def test_a_bmp_without_its_file_header_is_refused_as_unsupported():
    with pytest.raises(InvalidInput) as caught:
        inspect_image(headerless_bmp())
    assert caught.value.code == "UNSUPPORTED_FORMAT" and "DIB" in caught.value.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "EMPTY_IMAGE"),
        (b"this is a text file pretending to be a jpeg", "NOT_AN_IMAGE"),
        (image_bytes(640, 480)[:3000], "CORRUPT_IMAGE"),
        (image_bytes(200, 200), "IMAGE_DIMENSIONS"),
        (image_bytes(900, 300), "IMAGE_ASPECT_RATIO"),
        (image_bytes(400, 400, "ICO"), "UNSUPPORTED_FORMAT"),
    ],
    ids=["empty", "text", "truncated", "too-small", "aspect-3-1", "ico"],
)
def test_bad_images_are_refused_with_a_named_rule(data, code):
    with pytest.raises(InvalidInput) as caught:
        inspect_image(data)
    assert caught.value.code == code
    assert caught.value.message


def _bmp_with_compression(value: int) -> bytes:
    data = bytearray(image_bytes(400, 400, "BMP"))
    data[30:34] = struct.pack("<I", value)  # BITMAPINFOHEADER.biCompression
    return bytes(data)


def _png_with_short_ihdr() -> bytes:
    good = image_bytes(400, 400, "PNG")
    return good[:8] + struct.pack(">I", 5) + good[12:]


@pytest.mark.parametrize(
    ("data", "raised_inside_pillow"),
    [
        (image_bytes(400, 400, "WEBP")[:16], "OSError"),
        (image_bytes(400, 400, "BMP")[:18], "OSError"),
        (_bmp_with_compression(0x7F), "OSError"),
        (image_bytes(400, 400, "PNG")[:16], "OSError"),
        (_png_with_short_ihdr(), "ValueError"),
        (image_bytes(400, 400, "JPEG")[:6], "OSError"),
        (image_bytes(400, 400, "MPO")[:6], "OSError"),
    ],
    ids=[
        "webp-header-cut",
        "bmp-header-cut",
        "bmp-unknown-compression",
        "png-header-cut",
        "png-short-ihdr",
        "jpeg-6-bytes",
        "mpo-6-bytes",
    ],
)
def test_a_broken_header_is_a_corrupt_image_not_an_exception(data, raised_inside_pillow):
    with pytest.raises(InvalidInput) as caught:
        inspect_image(data)
    assert caught.value.code == "CORRUPT_IMAGE"
    assert raised_inside_pillow in caught.value.message


@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (20_000, 20_000)], ids=["over-limit", "twice-limit"])
def test_a_decompression_bomb_is_refused_by_its_declared_size(width, height):
    with pytest.raises(InvalidInput) as caught:
        inspect_image(png_declaring(width, height))
    assert caught.value.code == "IMAGE_DIMENSIONS"
    assert f"{width * height} pixels" in caught.value.message


@pytest.mark.parametrize(
    "error",
    [
        struct.error("unpack requires a buffer"),
        EOFError(),
        IndexError("list index"),
        KeyError(7),
        ZeroDivisionError(),
        TypeError("x"),
        SyntaxError("bad"),
    ],
    ids=lambda error: f"{type(error).__module__}.{type(error).__name__}".removeprefix("builtins."),
)
@pytest.mark.parametrize("stage", ["open", "load"])
def test_whatever_a_pillow_plugin_raises_on_hostile_bytes_becomes_a_named_corrupt_image(monkeypatch, error, stage):
    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(Image if stage == "open" else PngImagePlugin.PngImageFile, stage, fail)
    with pytest.raises(InvalidInput) as caught:
        inspect_image(image_bytes(400, 400, "PNG"))
    assert caught.value.code == "CORRUPT_IMAGE"
    assert type(error).__name__ in caught.value.message


def test_running_out_of_memory_is_not_blamed_on_the_file(monkeypatch):
    def exhaust(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", exhaust)
    with pytest.raises(MemoryError):
        inspect_image(image_bytes(400, 400, "PNG"))


def test_an_image_over_6000_px_is_scaled_down_not_refused():
    buffer = io.BytesIO()
    quadrants(7000, 7000).save(buffer, format="PNG")
    info = inspect_image(buffer.getvalue())
    assert (info.format, info.width, info.height) == ("jpeg", 6000, 6000)


def test_over_30_mb_is_read_and_over_100_mb_is_refused_before_reading():
    check_size(31 * 1024 * 1024)
    with pytest.raises(InvalidInput, match="uploads up to 100 MB"):
        check_size(101 * 1024 * 1024)
