"""Photos as people upload them: HEIC converted, EXIF orientation applied, oversized images scaled down, and each
change recorded; through the submission path, the provider receives the changed bytes."""

import base64
import io
import json

import pillow_heif
import pytest
from PIL import Image, ImageOps

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Job, JobStatus, Upload
from seedance_pipeline.rules import image_normalise
from seedance_pipeline.rules.image_rules import (
    MAX_IMAGE_BYTES,
    MAX_INLINE_BYTES,
    MAX_UPLOAD_BYTES,
    check_size,
    prepare_image,
)
from tests.support.fakes import FakeStore, make_runtime
from tests.support.images import image_bytes, png_declaring
from tests.support.photos import (
    EXIF_ORIENTATION,
    QUADRANT_COLOURS,
    colour_at,
    heic_bytes,
    jpeg_with_orientation,
    near,
    noise_png,
    quadrants,
    solid_jpeg,
)

BUCKET = "in-bucket"
RED, GREEN, BLUE, YELLOW = QUADRANT_COLOURS


def _submitted_image(runtime, storage, provider, key: str, data: bytes) -> tuple[bytes, Job]:
    """Upload `data`, submit it, and return the image bytes the provider received and the job record."""
    storage.add(BUCKET, key, data)
    outcome = accept_upload(Upload(bucket=BUCKET, key=key, sequencer="00A1", etag="e1"), runtime, owner="req-1")
    assert outcome.outcome == "SUBMITTED", outcome.reason
    url = provider.submissions[0]["images"][0]
    assert url.startswith("data:image/jpeg;base64,"), url[:60]
    return base64.b64decode(url.split(",", 1)[1]), _job(runtime.store, outcome.job_id)


def test_a_heic_photo_is_submitted_as_a_jpeg_of_the_same_picture_and_the_change_is_recorded():
    runtime, store, storage, provider = make_runtime()  # presigned-url delivery: the changed bytes must still go
    sent, job = _submitted_image(runtime, storage, provider, "uploads/IMG_0001.HEIC", heic_bytes(800, 600))
    with Image.open(io.BytesIO(sent)) as image:
        assert image.format == "JPEG" and image.size == (800, 600)
    assert near(colour_at(sent, 0.25, 0.25), RED) and near(colour_at(sent, 0.75, 0.75), YELLOW)
    assert job.input_changes == [{"key": "uploads/IMG_0001.HEIC", "what": "converted", "from": "heic", "to": "jpeg"}]


def test_a_jpeg_with_exif_orientation_6_is_sent_turned_90_degrees_clockwise():
    # Stored landscape 800x600; orientation 6 says "turn 90 degrees clockwise to display": a portrait photo.
    runtime, store, storage, provider = make_runtime()
    sent, job = _submitted_image(runtime, storage, provider, "uploads/portrait.jpg", jpeg_with_orientation(800, 600, 6))
    with Image.open(io.BytesIO(sent)) as image:
        assert image.size == (600, 800)
        assert image.getexif().get(EXIF_ORIENTATION) in (None, 1)  # nothing left for anyone to apply twice
    # Turned clockwise, the stored bottom-left (blue) is the displayed top-left, the stored top-left (red) top-right.
    assert near(colour_at(sent, 0.25, 0.25), BLUE) and near(colour_at(sent, 0.75, 0.25), RED)
    assert job.input_changes == [{"key": "uploads/portrait.jpg", "what": "rotated", "exif_orientation": 6}]


def test_an_image_9000_px_wide_is_scaled_to_6000_keeping_its_aspect_ratio():
    runtime, store, storage, provider = make_runtime()
    sent, job = _submitted_image(runtime, storage, provider, "uploads/camera.jpg", solid_jpeg(9000, 6000))
    with Image.open(io.BytesIO(sent)) as image:
        assert image.size == (6000, 4000)
    assert job.input_changes == [
        {
            "key": "uploads/camera.jpg",
            "what": "scaled",
            "from": [9000, 6000],
            "to": [6000, 4000],
            "reason": "a side was over 6000 px",
        }
    ]


def test_an_image_that_needs_nothing_is_sent_as_uploaded_by_presigned_url():
    runtime, store, storage, provider = make_runtime()
    data = image_bytes(640, 480)
    storage.add(BUCKET, "uploads/plain.jpg", data)
    outcome = accept_upload(
        Upload(bucket=BUCKET, key="uploads/plain.jpg", sequencer="1", etag="e1"), runtime, owner="r"
    )
    assert outcome.outcome == "SUBMITTED"
    assert provider.submissions[0]["images"][0].startswith("https://")
    assert _job(store, outcome.job_id).input_changes == []
    assert prepare_image(data).data is data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_as_pillows_exif_transpose_applies_it(orientation):
    stored = jpeg_with_orientation(400, 320, orientation)
    with Image.open(io.BytesIO(stored)) as image:
        expected = ImageOps.exif_transpose(image)
        assert expected is not None
        expected.load()
    prepared = prepare_image(stored)
    with Image.open(io.BytesIO(prepared.data)) as got:
        assert got.size == expected.size
        for point in _probe_points(got.size):
            assert near(_pixel(got, point), _pixel(expected, point))
    assert [c.record() for c in prepared.changes] == (
        [] if orientation == 1 else [{"what": "rotated", "exif_orientation": orientation}]
    )


def _pixel(image: Image.Image, point: tuple[int, int]) -> tuple[int, int, int]:
    red, green, blue = image.convert("RGB").getpixel(point)  # type: ignore[misc]
    return red, green, blue


def _job(store: FakeStore, job_id: str | None) -> Job:
    assert job_id is not None
    job = store.get(job_id)
    assert job is not None
    return job


def _probe_points(size: tuple[int, int]) -> list[tuple[int, int]]:
    width, height = size
    return [(width // 4, height // 4), (3 * width // 4, height // 4), (width // 4, 3 * height // 4)]


def test_a_rotated_photo_over_the_side_limit_is_reported_in_its_upright_sizes():
    stored = io.BytesIO()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    quadrants(7200, 4800).save(stored, format="JPEG", exif=exif.tobytes())
    prepared = prepare_image(stored.getvalue())
    assert (prepared.info.width, prepared.info.height) == (4000, 6000)
    assert [c.record() for c in prepared.changes] == [
        {"what": "rotated", "exif_orientation": 6},
        {"what": "scaled", "from": [4800, 7200], "to": [4000, 6000], "reason": "a side was over 6000 px"},
    ]


def test_a_file_of_30_mb_or_more_is_recompressed_under_the_providers_limit():
    data = noise_png(3300, 3300)  # random pixels: a PNG of about 32.7 MB
    assert len(data) >= MAX_IMAGE_BYTES
    prepared = prepare_image(data)
    assert prepared.info.format == "jpeg" and len(prepared.data) < MAX_INLINE_BYTES < MAX_IMAGE_BYTES
    records = [c.record() for c in prepared.changes]
    assert records[0] == {"what": "converted", "from": "png", "to": "jpeg"}
    assert records[-1] == {"what": "recompressed", "from_bytes": len(data), "to_bytes": len(prepared.data)}


def test_a_jpeg_still_over_the_byte_limit_is_scaled_down_until_it_fits():
    with Image.open(io.BytesIO(noise_png(1200, 900))) as image:
        image.load()
        result = image_normalise.normalise(
            image,
            stored=(1200, 900),
            orientation=1,
            target=(1200, 900),
            scale_reasons=[],
            max_bytes=400_000,
            min_side=300,
            source_name="png",
            source_bytes=3_300_000,
        )
    assert len(result.data) < 400_000
    width, height = result.size
    assert width < 1200 and abs(width / height - 4 / 3) < 0.01
    scaled = [c.record() for c in result.changes if c.what == "scaled"]
    assert len(scaled) == 1 and scaled[0]["from"] == [1200, 900] and scaled[0]["to"] == [width, height]
    assert scaled[0]["reason"].startswith("the JPEG was still")


def test_an_image_that_cannot_fit_the_byte_limit_above_the_smallest_side_is_refused():
    with Image.open(io.BytesIO(noise_png(400, 400))) as image:
        image.load()
        with pytest.raises(InvalidInput) as caught:
            image_normalise.normalise(
                image,
                stored=(400, 400),
                orientation=1,
                target=(400, 400),
                scale_reasons=[],
                max_bytes=20_000,
                min_side=300,
                source_name="png",
                source_bytes=480_000,
            )
    assert caught.value.code == "IMAGE_TOO_LARGE" and "300 px" in caught.value.message


def test_an_upload_over_the_read_limit_is_refused_before_reading():
    with pytest.raises(InvalidInput) as caught:
        check_size(MAX_UPLOAD_BYTES + 1)
    assert caught.value.code == "IMAGE_TOO_LARGE" and "100 MB" in caught.value.message
    check_size(31 * 1024 * 1024)  # over the provider's 30 MB is no longer a refusal: it is scaled down


def test_an_image_over_the_decoded_pixel_bound_is_refused_before_decoding():
    with pytest.raises(InvalidInput) as caught:
        prepare_image(png_declaring(9000, 8000))  # 72 MP: under Pillow's bomb guard, over ours
    assert caught.value.code == "IMAGE_DIMENSIONS" and "9000x8000" in caught.value.message


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch):
    seen = []
    real_normalise = image_normalise.normalise

    def spy(image, **kwargs):
        seen.append(image.size)
        return real_normalise(image, **kwargs)

    monkeypatch.setattr(image_normalise, "normalise", spy)
    prepared = prepare_image(solid_jpeg(10_000, 8000))  # 80 MP: over our decode bound, under Pillow's bomb guard
    assert seen == [(5000, 4000)]  # decoded at 1/2 scale: 20 MP in memory, not 80
    assert (prepared.info.width, prepared.info.height) == (5000, 4000)
    assert [c.record() for c in prepared.changes] == [
        {
            "what": "scaled",
            "from": [10_000, 8000],
            "to": [5000, 4000],
            "reason": "a side was over 6000 px; over 64 MP: decoded at 1/2 scale",
        }
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (heic_bytes(800, 300), "IMAGE_ASPECT_RATIO"),
        (heic_bytes(400, 400)[:-100], "CORRUPT_IMAGE"),
        (jpeg_with_orientation(900, 250, 6), "IMAGE_DIMENSIONS"),
    ],
    ids=["heic-too-wide", "heic-truncated", "rotated-too-small"],
)
def test_a_photo_the_provider_cannot_take_even_repaired_is_refused_with_its_rule(data, code):
    with pytest.raises(InvalidInput) as caught:
        prepare_image(data)
    assert caught.value.code == code and caught.value.message


def test_a_portrait_photo_through_a_manifest_frame_is_sent_upright_and_recorded_for_that_frame():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clip/_frames/a.jpg", jpeg_with_orientation(800, 600, 6))
    storage.add(BUCKET, "uploads/clip/job.json", json.dumps({"first_frame": "_frames/a.jpg"}).encode())
    outcome = accept_upload(
        Upload(bucket=BUCKET, key="uploads/clip/job.json", sequencer="1", etag="e1"), runtime, owner="r"
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    job = _job(store, outcome.job_id)
    assert job.status is JobStatus.SUBMITTED
    assert job.input_changes == [{"key": "uploads/clip/_frames/a.jpg", "what": "rotated", "exif_orientation": 6}]


def test_a_heic_whose_own_rotation_says_portrait_is_sent_upright_without_a_rotated_entry():
    # pillow-heif writes EXIF orientation 6 as the HEIF's own rotation (irot); libheif applies it on decoding.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    pillow_heif.from_pillow(quadrants(800, 600)).save(buffer, quality=80, exif=exif.tobytes())
    prepared = prepare_image(buffer.getvalue())
    assert (prepared.info.width, prepared.info.height) == (600, 800)
    assert near(colour_at(prepared.data, 0.25, 0.25), BLUE) and near(colour_at(prepared.data, 0.75, 0.25), RED)
    assert [c.record() for c in prepared.changes] == [{"what": "converted", "from": "heic", "to": "jpeg"}]
