"""Generated: whatever bytes arrive, the image check answers with a description or a rejection, nothing else."""

from functools import cache

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules.image_rules import (
    ALLOWED_FORMATS,
    MAX_IMAGE_BYTES,
    MAX_INLINE_BYTES,
    MAX_SIDE,
    MIN_SIDE,
    PreparedImage,
    prepare_image,
)
from tests.support.domain_answers import answer_or_refusal
from tests.support.example_counts import examples
from tests.support.images import ACCEPTED_FORMATS, smallest_valid_image
from tests.support.photos import heic_bytes, jpeg_with_orientation, solid_jpeg

# Pillow warns about the damage it meets ("Truncated File Read", "Corrupt EXIF data"): expected here, not news.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

IMAGE_REJECTIONS = {
    ErrorCode.EMPTY_IMAGE,
    ErrorCode.NOT_AN_IMAGE,
    ErrorCode.UNSUPPORTED_FORMAT,
    ErrorCode.IMAGE_DIMENSIONS,
    ErrorCode.IMAGE_ASPECT_RATIO,
    ErrorCode.CORRUPT_IMAGE,
    ErrorCode.IMAGE_TOO_LARGE,
}
# Enough of each format's signature that Pillow hands the rest to that format's parser.
SIGNATURES = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"RIFF\x00\x10\x00\x00WEBPVP8L",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"GIF87a",
    b"GIF89a",
    b"\x28\x00\x00\x00",  # a bare BITMAPINFOHEADER: Pillow's DIB
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # HEIC, as phones write it (pillow-heif's libheif)
    b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heif",  # plain HEIF
]


@cache
def photo_seed(kind: str) -> bytes:
    """Seeds for the repair path (rules/image_normalise.py): each one is changed before it is sent."""
    if kind == "HEIC":
        return heic_bytes(320, 320)
    if kind == "EXIF-6 JPEG":
        return jpeg_with_orientation(400, 320, 6)
    return solid_jpeg(6400, 3000)  # "OVERSIZED JPEG": scaled down


PHOTO_SEEDS = ("HEIC", "EXIF-6 JPEG", "OVERSIZED JPEG")


def assert_domain_answer(data: bytes) -> None:
    answer = answer_or_refusal(lambda: prepare_image(data))
    if isinstance(answer, InvalidInput):
        assert answer.code in IMAGE_REJECTIONS and answer.message
        return
    assert isinstance(answer, PreparedImage)
    info = answer.info
    limit = MAX_INLINE_BYTES if answer.changes else MAX_IMAGE_BYTES  # a changed image is sent inline (base64)
    assert info.format in ALLOWED_FORMATS.values() and info.size_bytes == len(answer.data) < limit
    assert MIN_SIDE <= info.width <= MAX_SIDE and MIN_SIDE <= info.height <= MAX_SIDE
    # What is sent is the upload itself, or (changed, and saying how) a JPEG of the size it claims.
    assert answer.data is data if not answer.changes else info.format == "jpeg" and answer.data != data


def _cut_points(fmt: str) -> st.SearchStrategy[tuple[str, int]]:
    return st.tuples(st.just(fmt), st.integers(0, len(smallest_valid_image(fmt))))


def _changed_bytes(fmt: str) -> st.SearchStrategy[tuple[str, int, int]]:
    # Headers are where parsers trust the file most, so most changes land in the first 64 or 512 bytes.
    last = len(smallest_valid_image(fmt)) - 1
    position = st.one_of(st.integers(0, 63), st.integers(0, 511), st.integers(0, last))
    return st.tuples(st.just(fmt), position, st.integers(0, 255))


@given(st.binary(max_size=4096))
@example(b"\xff\xd8\xff\xe0\x00\x10")  # a JPEG cut inside its first segment: OSError from open
def test_arbitrary_bytes_are_described_or_refused(data):
    assert_domain_answer(data)


@given(st.sampled_from(SIGNATURES), st.binary(max_size=2048))
@example(b"BM", b"\x00" * 16)  # OSError: Truncated File Read
@example(b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x05IHDR" + b"\x00" * 16)  # ValueError: Truncated IHDR chunk
def test_bytes_behind_a_real_signature_are_described_or_refused(signature, rest):
    assert_domain_answer(signature + rest)


@given(st.sampled_from(ACCEPTED_FORMATS).flatmap(_cut_points))
@example(("WEBP", 16))  # OSError: could not create decoder object
@example(("BMP", 18))  # OSError: Truncated File Read
@example(("PNG", 16))  # OSError: Truncated File Read
@example(("MPO", 6))
def test_a_truncated_image_of_every_accepted_format_is_described_or_refused(cut_point):
    fmt, cut = cut_point
    assert_domain_answer(smallest_valid_image(fmt)[:cut])


@given(st.sampled_from(ACCEPTED_FORMATS).flatmap(_changed_bytes))
@example(("BMP", 30, 0x7F))  # OSError: Unsupported BMP compression
@example(("BMP", 28, 0x07))  # OSError: Unsupported BMP pixel depth
@example(("BMP", 14, 0x71))  # OSError: Unsupported BMP header type
@example(("PNG", 11, 0x05))  # ValueError: Truncated IHDR chunk
def test_one_changed_byte_in_an_image_of_every_accepted_format_is_described_or_refused(change):
    fmt, position, value = change
    mutated = bytearray(smallest_valid_image(fmt))
    mutated[position] = value
    assert_domain_answer(bytes(mutated))


def _photo_cut_points(kind: str) -> st.SearchStrategy[tuple[str, int]]:
    return st.tuples(st.just(kind), st.integers(0, len(photo_seed(kind))))


def _photo_changed_bytes(kind: str) -> st.SearchStrategy[tuple[str, int, int]]:
    last = len(photo_seed(kind)) - 1
    position = st.one_of(st.integers(0, 63), st.integers(0, 511), st.integers(0, last))
    return st.tuples(st.just(kind), position, st.integers(0, 255))


# The oversized seed decodes 19 MP per example: fewer examples keep the suite quick.
_photo_settings = settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_photo_settings
@given(st.sampled_from(PHOTO_SEEDS).flatmap(_photo_cut_points))
@example(("HEIC", 40))
@example(("EXIF-6 JPEG", 300))
def test_a_truncated_photo_on_the_repair_path_is_described_or_refused(cut_point):
    kind, cut = cut_point
    assert_domain_answer(photo_seed(kind)[:cut])


@_photo_settings
@given(st.sampled_from(PHOTO_SEEDS).flatmap(_photo_changed_bytes))
def test_one_changed_byte_in_a_photo_on_the_repair_path_is_described_or_refused(change):
    kind, position, value = change
    mutated = bytearray(photo_seed(kind))
    mutated[position] = value
    assert_domain_answer(bytes(mutated))
