"""Hostile bytes through the real submit handler, boto3 and moto: each upload ends REJECTED with its reason, no
provider call is made, and the handler returns normally, so Lambda never retries a poison event into a timeout.
"""

from __future__ import annotations

import json
import struct

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes, png_declaring
from tests.support.warm_pipeline import module_wide_stack, warm_pipeline  # noqa: F401 - fixtures


def _bmp_with_unknown_compression() -> bytes:
    data = bytearray(image_bytes(400, 400, "BMP"))
    data[30:34] = struct.pack("<I", 0x7F)
    return bytes(data)


def assert_rejected(pipeline, sim, key: str, result: dict, code: str) -> None:
    [outcome] = result["outcomes"]
    assert outcome["outcome"] == "REJECTED", outcome
    job = pipeline.jobs()[key]
    assert job.status is JobStatus.REJECTED
    assert job.error.code == code and job.error.message == outcome["reason"]
    assert sim.counters.submit == 0


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        pytest.param(
            "webp-header-cut.webp", image_bytes(400, 400, "WEBP")[:16], "CORRUPT_IMAGE", id="webp-header-cut.webp"
        ),
        pytest.param("bmp-header-cut.bmp", image_bytes(400, 400, "BMP")[:18], "CORRUPT_IMAGE", id="bmp-header-cut.bmp"),
        pytest.param(
            "bmp-unknown-compression.bmp",
            _bmp_with_unknown_compression(),
            "CORRUPT_IMAGE",
            id="bmp-unknown-compression.bmp",
        ),
        pytest.param("tiff-cut.tiff", image_bytes(400, 400, "TIFF")[:4000], "CORRUPT_IMAGE", id="tiff-cut.tiff"),
        pytest.param("bomb.png", png_declaring(20_000, 20_000), "IMAGE_DIMENSIONS", id="bomb.png"),
    ],
)
def test_a_poison_image_is_rejected_by_the_handler(pipeline, sim, name, data, code):
    key = f"uploads/poison/{name}"
    assert_rejected(pipeline, sim, key, pipeline.submit(pipeline.upload(key, data)), code)


def test_a_malformed_encoded_prompt_is_rejected_by_the_handler(pipeline, sim):
    key = "uploads/poison/prompt.jpg"
    result = pipeline.submit(pipeline.upload(key, image_bytes(), {"prompt": "=?UTF-8?B?A?="}))
    assert_rejected(pipeline, sim, key, result, "INVALID_METADATA")


@pytest.mark.parametrize(
    ("name", "document"),
    [
        pytest.param("deep.json", b"[" * 60_000, id="deep.json"),
        pytest.param("digits.json", b'{"first_frame": "a.png", "seed": ' + b"7" * 5000 + b"}", id="digits.json"),
        pytest.param("surrogate.json", b'{"first_frame": "\\ud800.png"}', id="surrogate.json"),
        pytest.param("long-key.json", json.dumps({"first_frame": "a" * 2000 + ".png"}).encode(), id="long-key.json"),
    ],
)
def test_a_poison_manifest_is_rejected_by_the_handler(pipeline, sim, name, document):
    key = f"uploads/poison/{name}"
    assert_rejected(pipeline, sim, key, pipeline.submit(pipeline.upload(key, document)), "INVALID_MANIFEST")


def test_a_camera_mpo_is_submitted(pipeline, sim):
    key = "uploads/poison/IMG_0001.jpg"
    [outcome] = pipeline.submit(pipeline.upload(key, image_bytes(640, 480, "MPO")))["outcomes"]
    assert outcome["outcome"] == "SUBMITTED", outcome
    assert sim.counters.submit == 1
