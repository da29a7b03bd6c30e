"""Status answers in every shape gateways send, and some they should not: the job either delivers the exact bytes
the provider serves, or fails with a reason and writes nothing.

One moto stack serves the module; each test opens its own pipeline on it (so it can set its own environment)
and uses its own keys.
"""

from __future__ import annotations

import pytest
import requests

from seedance_pipeline.models import JobStatus
from seedance_simulator import RESPONSE_SHAPES
from tests.support.images import image_bytes

WORKING_SHAPES = [shape for shape in RESPONSE_SHAPES if shape not in ("missing_url", "non_string_url")]
# The same image and the same pixel settings for every job: the simulator renders the clip once and caches it.
IMAGE = image_bytes(640, 480)
METADATA = {"resolution": "480p", "return-last-frame": "true"}


@pytest.fixture(scope="module")
def stack(module_stack):
    """Overrides conftest's per-test stack with one for the whole module."""
    return module_stack


def objects_under(stack, prefix: str) -> list[str]:
    response = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in response.get("Contents", [])]


def served(sim, task_id: str, suffix: str) -> bytes:
    response = requests.get(f"{sim.base_url}/results/{task_id}{suffix}", timeout=30)
    response.raise_for_status()
    return response.content


def run_one(pipeline, key: str):
    [outcome] = pipeline.submit(pipeline.upload(key, IMAGE, METADATA))["outcomes"]
    assert outcome["outcome"] == "SUBMITTED", outcome
    return pipeline.run_until_terminal(timeout=60)[key]


def test_the_working_shapes_cover_every_shape_but_the_broken_ones():
    assert set(RESPONSE_SHAPES) - set(WORKING_SHAPES) == {"missing_url", "non_string_url"}


@pytest.mark.parametrize("shape", WORKING_SHAPES)
def test_every_gateway_shape_delivers_the_bytes_the_provider_serves(make_pipeline, sim, stack, shape):
    pipeline = make_pipeline()
    sim.knobs.response_shape = shape
    key = f"uploads/shapes/{shape}.jpg"

    job = run_one(pipeline, key)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.outputs.video_key == f"videos/shapes/{shape}.jpg.{job.job_id[:12]}.mp4"
    s3 = stack.client("s3")
    stored = s3.get_object(Bucket=stack.bucket, Key=job.outputs.video_key)["Body"].read()
    assert stored == served(sim, job.task_id, ".mp4")
    assert stored[4:8] == b"ftyp"
    assert job.outputs.last_frame_key == f"videos/shapes/{shape}.jpg.{job.job_id[:12]}.last-frame.png"
    frame = s3.get_object(Bucket=stack.bucket, Key=job.outputs.last_frame_key)["Body"].read()
    assert frame == served(sim, job.task_id, ".last-frame.png")
    assert frame.startswith(b"\x89PNG")
    assert job.error is None
    assert sim.counters.submit == 1


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ("missing_url", "reported success but gave no usable video URL"),
        ("non_string_url", "the URL field is not a string"),
    ],
)
def test_a_success_without_a_usable_url_fails_with_a_reason_and_writes_nothing(
    make_pipeline, sim, stack, shape, reason
):
    pipeline = make_pipeline()
    sim.knobs.response_shape = shape
    key = f"uploads/broken/{shape}.jpg"

    job = run_one(pipeline, key)

    assert job.status is JobStatus.FAILED
    assert job.error.code == "DOWNLOAD_REFUSED"
    assert reason in job.error.message
    assert job.outputs is None
    assert objects_under(stack, f"videos/broken/{shape}") == []
    assert sim.counters.download == 0
    assert sim.counters.submit == 1


def test_a_loopback_http_result_url_is_refused_when_private_downloads_are_off(make_pipeline, sim, stack):
    pipeline = make_pipeline(ALLOW_PRIVATE_DOWNLOADS="false")
    assert pipeline.runtime.settings.allow_private_downloads is False
    assert sim.base_url.startswith("http://127.0.0.1:")
    key = "uploads/private/loopback.jpg"

    job = run_one(pipeline, key)

    assert job.status is JobStatus.FAILED
    assert job.error.code == "DOWNLOAD_REFUSED"
    assert "refusing to download" in job.error.message
    assert "only https is allowed" in job.error.message
    assert job.outputs is None
    assert objects_under(stack, "videos/private/") == []
    assert sim.counters.download == 0  # refused before any request went out
    assert sim.counters.submit == 1


@pytest.mark.parametrize("status", ["cancelled", "expired"])
def test_a_cancelled_or_expired_task_fails_with_a_reason_naming_the_status(make_pipeline, sim, stack, status):
    pipeline = make_pipeline()
    sim.knobs.status_override = status
    key = f"uploads/ended/{status}.jpg"

    job = run_one(pipeline, key)

    assert job.status is JobStatus.FAILED
    assert job.provider_status == status
    assert status in job.error.message
    assert objects_under(stack, f"videos/ended/{status}") == []
    assert sim.counters.download == 0
