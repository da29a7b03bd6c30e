"""Issue 20 over real HTTP (moto server, the simulator): 2.x reference inputs, and moderation outcomes with the
resubmit rule, on both dialects where the dialect can carry them."""

from __future__ import annotations

import json
import struct

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

SEEDANCE_2 = "doubao-seedance-2-0-260128"


def mp4() -> bytes:
    return struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 4000


def wav() -> bytes:
    return b"RIFF" + struct.pack("<I", 4088) + b"WAVEfmt " + b"\x00" * 4080


def put(stack, key: str, data: bytes) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=data)


def put_references(stack, folder: str) -> dict:
    put(stack, f"{folder}/_refs/face.png", image_bytes(800, 450, "PNG", (10, 80, 160)))
    put(stack, f"{folder}/_refs/room.png", image_bytes(800, 450, "PNG", (200, 90, 20)))
    put(stack, f"{folder}/_refs/move.mp4", mp4())
    put(stack, f"{folder}/_refs/beat.wav", wav())
    return {
        "reference_images": ["_refs/face.png", "_refs/room.png"],
        "reference_videos": ["_refs/move.mp4"],
        "reference_audio": ["_refs/beat.wav"],
        "model": SEEDANCE_2,
        "resolution": "480p",
        "duration": 5,
    }


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_manifest_with_reference_images_a_video_and_audio_makes_one_task(pipeline, sim, stack):
    body = put_references(stack, "uploads/refs")
    pipeline.submit(pipeline.upload("uploads/refs/scene.json", json.dumps(body).encode()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/refs/scene.json"]

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert sim.counters.submit == 1
    sent = sim.counters.request_bodies[-1]
    kinds = [(item["type"], item.get("role")) for item in sent["content"]]
    assert kinds == [
        ("text", None),
        ("image_url", "reference_image"),
        ("image_url", "reference_image"),
        ("video_url", "reference_video"),
        ("audio_url", "reference_audio"),
    ]


@pytest.mark.parametrize("dialect", ["unified"], indirect=True)
def test_the_unified_dialect_refuses_reference_video_and_audio_before_paying(pipeline, sim, stack):
    body = put_references(stack, "uploads/refs")
    outcome = pipeline.submit(pipeline.upload("uploads/refs/scene.json", json.dumps(body).encode()))["outcomes"][0]
    assert outcome["outcome"] == "REJECTED"
    assert "unified gateway format carries images only" in outcome["reason"]
    assert "ProviderApi=ark" in outcome["reason"]
    assert sim.counters.submit == 0


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_a_wav_named_mp4_is_refused_by_its_signature_before_paying(pipeline, sim, stack):
    put(stack, "uploads/bad/_refs/face.png", image_bytes(800, 450, "PNG"))
    put(stack, "uploads/bad/_refs/move.mp4", wav())
    body = {"reference_images": ["_refs/face.png"], "reference_videos": ["_refs/move.mp4"], "model": SEEDANCE_2}
    outcome = pipeline.submit(pipeline.upload("uploads/bad/scene.json", json.dumps(body).encode()))["outcomes"][0]
    assert outcome["outcome"] == "REJECTED"
    assert sim.counters.submit == 0


FLAGGED = "The request failed because the output video may contain sensitive information."


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_a_flagged_output_video_ends_failed_saying_what_was_flagged_and_what_to_do(pipeline, sim):
    sim.knobs.failure_reason = FLAGGED
    pipeline.submit(pipeline.upload("uploads/flagged.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/flagged.jpg"]
    assert job.status is JobStatus.FAILED
    assert job.error.code == "MODERATION_OUTPUT_VIDEO"
    assert "moderation flagged the output video (OutputVideoSensitiveContentDetected)" in job.error.message
    assert "not billed" in job.error.message and FLAGGED in job.error.message
    assert job.moderation.model_dump() == {"what": "output_video", "code": "OutputVideoSensitiveContentDetected"}
    assert sim.counters.submit == 1  # ResubmitOnOutputModeration is off by default


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_a_flagged_output_is_resubmitted_once_with_a_new_seed_and_the_sidecar_says_so(make_pipeline, sim, stack):
    pipeline = make_pipeline(RESUBMIT_ON_OUTPUT_MODERATION="true")
    sim.knobs.fail_next = 1
    pipeline.submit(pipeline.upload("uploads/second-try.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/second-try.jpg"]

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert sim.counters.submit == 2
    first, second = sim.counters.request_bodies[-2:]
    # The resubmission has a seed of its own, whatever the first sent (Ark: the job's lookup seed; the gateway: none).
    assert isinstance(second["seed"], int) and second["seed"] != first.get("seed")
    assert job.resubmissions == 1
    sidecar = json.loads(stack.client("s3").get_object(Bucket=stack.bucket, Key=job.outputs.sidecar_key)["Body"].read())
    assert sidecar["moderation"] == {"what": "output_video", "code": "OutputVideoSensitiveContentDetected"}
    assert sidecar["resubmissions"] == 1


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_an_output_flagged_twice_is_resubmitted_only_once(make_pipeline, sim):
    pipeline = make_pipeline(RESUBMIT_ON_OUTPUT_MODERATION="true")
    sim.knobs.fail_next = 5
    pipeline.submit(pipeline.upload("uploads/twice.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/twice.jpg"]
    assert job.status is JobStatus.FAILED
    assert job.error.code == "MODERATION_OUTPUT_VIDEO"
    assert sim.counters.submit == 2


@pytest.mark.parametrize(
    ("knob", "error_code", "words"),
    [
        ("input_text_sensitive_next", "MODERATION_PROMPT", "reword it"),
        ("input_image_sensitive_next", "MODERATION_IMAGE", "use another image"),
        ("input_image_privacy_next", "MODERATION_REAL_PERSON", "authorised asset"),
    ],
    ids=["prompt", "image", "real-person"],
)
@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_flagged_input_ends_failed_with_its_reason_and_is_never_resubmitted(
    make_pipeline, sim, knob, error_code, words
):
    pipeline = make_pipeline(RESUBMIT_ON_OUTPUT_MODERATION="true")
    setattr(sim.knobs, knob, 1)
    pipeline.submit(pipeline.upload("uploads/input-flagged.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/input-flagged.jpg"]
    assert job.status is JobStatus.FAILED
    assert job.error.code == error_code and words in job.error.message
    assert job.resubmissions == 0
    assert len(sim.counters.request_bodies) == 1


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_flagged_output_audio_is_resubmitted_once_silent(make_pipeline, sim):
    pipeline = make_pipeline(RESUBMIT_ON_OUTPUT_MODERATION="true")
    sim.knobs.output_audio_sensitive_next = 1
    meta = {"model": SEEDANCE_2, "generate-audio": "true", "resolution": "480p"}
    pipeline.submit(pipeline.upload("uploads/loud.jpg", image_bytes(), meta))
    job = pipeline.run_until_terminal(timeout=60)["uploads/loud.jpg"]
    assert job.status is JobStatus.SUCCEEDED, job.error
    first, second = sim.counters.request_bodies[-2:]
    assert first["generate_audio"] is True and second["generate_audio"] is False
    assert job.moderation.what == "output_audio"
