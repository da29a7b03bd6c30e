import pytest

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.image_rules import check_size, inspect_image
from tests.support.images import image_bytes


def test_a_good_jpeg_is_described():
    info = inspect_image(image_bytes(640, 480))
    assert (info.format, info.width, info.height) == ("jpeg", 640, 480)
    assert info.mime_type == "image/jpeg"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_allowed_format_passes(fmt):
    assert inspect_image(image_bytes(400, 400, fmt)).format == fmt.lower()


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


def test_an_image_over_6000_px_is_refused():
    with pytest.raises(InvalidInput) as caught:
        inspect_image(image_bytes(7000, 7000, "PNG"))
    assert "7000x7000" in caught.value.message


def test_30_mb_is_refused_before_reading():
    with pytest.raises(InvalidInput, match="under 30 MB"):
        check_size(31 * 1024 * 1024)
