"""Hostile uploads through the submission path: each ends REJECTED with its reason, and the provider never hears of it.

An exception escaping here would make Lambda retry the same bytes until the job timed out with no reason.
"""

import json
import struct

import pytest

from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes, png_declaring
from tests.support.photos import heic_bytes, jpeg_with_orientation, solid_jpeg

BUCKET = "in-bucket"
LITE = "doubao-seedance-1-0-lite-i2v-250428"


def _bmp_with_unknown_compression() -> bytes:
    data = bytearray(image_bytes(400, 400, "BMP"))
    data[30:34] = struct.pack("<I", 0x7F)
    return bytes(data)


POISON_IMAGES = {
    "truncated-webp-header": (image_bytes(400, 400, "WEBP")[:16], "CORRUPT_IMAGE"),
    "truncated-bmp-header": (image_bytes(400, 400, "BMP")[:18], "CORRUPT_IMAGE"),
    "bmp-unknown-compression": (_bmp_with_unknown_compression(), "CORRUPT_IMAGE"),
    "truncated-tiff": (image_bytes(400, 400, "TIFF")[:4000], "CORRUPT_IMAGE"),
    "truncated-png-header": (image_bytes(400, 400, "PNG")[:16], "CORRUPT_IMAGE"),
    "decompression-bomb": (png_declaring(20_000, 20_000), "IMAGE_DIMENSIONS"),
    # The repair path (HEIC conversion, EXIF rotation, scaling down) decodes too: the same answer for bad bytes.
    "truncated-heic": (heic_bytes(400, 400)[:-100], "CORRUPT_IMAGE"),
    "truncated-exif-rotated-jpeg": (jpeg_with_orientation(800, 600, 6)[:3000], "CORRUPT_IMAGE"),
    "truncated-oversized-jpeg": (solid_jpeg(6400, 3000)[:20_000], "CORRUPT_IMAGE"),
    "oversized-png-bomb": (png_declaring(9000, 8000), "IMAGE_DIMENSIONS"),
}


def _accept(runtime, key):
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer="00A1", etag="e1"), runtime, owner="req-1")


def _assert_rejected(outcome, store, provider, runtime, code):
    assert outcome.outcome == "REJECTED" and outcome.reason
    job = store.get(outcome.job_id)
    assert job.status is JobStatus.REJECTED
    assert job.error.code == code and job.error.message
    assert provider.submissions == [] and store.slots == set()
    assert runtime.events.published[-1].status is JobStatus.REJECTED


@pytest.mark.parametrize(("data", "code"), POISON_IMAGES.values(), ids=POISON_IMAGES.keys())
def test_a_poison_image_upload_is_rejected_with_its_reason(data, code):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.img", data)
    _assert_rejected(_accept(runtime, "uploads/cat.img"), store, provider, runtime, code)


@pytest.mark.parametrize(("data", "code"), POISON_IMAGES.values(), ids=POISON_IMAGES.keys())
def test_a_poison_frame_named_by_a_manifest_is_rejected_naming_the_frame(data, code):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clip/_frames/a.img", data)
    storage.add(BUCKET, "uploads/clip/job.json", json.dumps({"first_frame": "_frames/a.img"}).encode())
    outcome = _accept(runtime, "uploads/clip/job.json")
    _assert_rejected(outcome, store, provider, runtime, code)
    assert "uploads/clip/_frames/a.img" in outcome.reason


@pytest.mark.parametrize(
    "prompt",
    ["=?UTF-8?B?A?=", "=?ütf-8?Q?a?=", "=?unicode_escape?Q?=5Cud800?="],
    ids=["one-char-base64", "non-ascii-charset", "lone-surrogate"],
)
def test_a_malformed_encoded_prompt_is_rejected_as_invalid_metadata(prompt):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), {"prompt": prompt})
    _assert_rejected(_accept(runtime, "uploads/cat.jpg"), store, provider, runtime, "INVALID_METADATA")


@pytest.mark.parametrize(
    "document",
    [
        b"[" * 60_000,
        b'{"first_frame": "a.png", "prompt": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"first_frame": "a.png", "seed": ' + b"7" * 5000 + b"}",
        b'{"first_frame": "\\ud800.png"}',
        json.dumps({"first_frame": "a" * 2000 + ".png"}).encode(),
    ],
    ids=["deep-array", "deep-object-in-a-field", "5000-digit-seed", "lone-surrogate-frame", "frame-key-too-long"],
)
def test_a_poison_manifest_is_rejected_as_invalid_manifest(document):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clip/job.json", document)
    _assert_rejected(_accept(runtime, "uploads/clip/job.json"), store, provider, runtime, "INVALID_MANIFEST")


def test_a_manifest_too_big_to_be_one_is_rejected_as_a_manifest_before_it_is_read():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clip/job.json", b" " * 70_000 + json.dumps({"first_frame": "a.png"}).encode())
    outcome = _accept(runtime, "uploads/clip/job.json")
    _assert_rejected(outcome, store, provider, runtime, "INVALID_MANIFEST")
    assert "over 64 KB" in outcome.reason


def test_a_camera_mpo_upload_is_submitted_as_a_jpeg_data_url():
    runtime, store, storage, provider = make_runtime(image_delivery="data-url")
    storage.add(BUCKET, "uploads/IMG_0001.jpg", image_bytes(640, 480, "MPO"))
    outcome = _accept(runtime, "uploads/IMG_0001.jpg")
    assert outcome.outcome == "SUBMITTED"
    assert provider.submissions[0]["images"][0].startswith("data:image/jpeg;base64,")
