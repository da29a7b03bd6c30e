"""A .json manifest under the input prefix describes a whole job: one or two frames, any parameter, any language."""

from __future__ import annotations

import json

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

LITE = "doubao-seedance-1-0-lite-i2v-250428"


def put(stack, key: str, data: bytes) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=data)


def test_a_first_and_last_frame_manifest_sends_both_frames(pipeline, sim, stack):
    put(stack, "uploads/clips/_frames/start.png", image_bytes(800, 450, "PNG", (10, 80, 160)))
    put(stack, "uploads/clips/_frames/end.png", image_bytes(800, 450, "PNG", (200, 90, 20)))
    body = {
        "first_frame": "_frames/start.png",
        "last_frame": "_frames/end.png",
        "model": LITE,
        "prompt": "镜头缓慢推进，天色由蓝转橙",
        "resolution": "480p",
        "ratio": "16:9",
    }
    pipeline.submit(pipeline.upload("uploads/clips/sunrise.json", json.dumps(body, ensure_ascii=False).encode()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/clips/sunrise.json"]

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.outputs.video_key == f"videos/clips/sunrise.json.{job.job_id[:12]}.mp4"
    sent = sim.counters.request_bodies[-1]
    assert len(sent["images"]) == 2 and sent["model"] == LITE
    assert sent["prompt"] == "镜头缓慢推进，天色由蓝转橙"


def test_the_default_pro_model_takes_a_first_and_a_last_frame_too(pipeline, sim, stack):
    put(stack, "uploads/pro/_frames/start.png", image_bytes(800, 450, "PNG", (10, 80, 160)))
    put(stack, "uploads/pro/_frames/end.png", image_bytes(800, 450, "PNG", (200, 90, 20)))
    body = {"first_frame": "_frames/start.png", "last_frame": "_frames/end.png", "resolution": "480p"}
    pipeline.submit(pipeline.upload("uploads/pro/clip.json", json.dumps(body).encode()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/pro/clip.json"]

    assert job.status is JobStatus.SUCCEEDED, job.error
    sent = sim.counters.request_bodies[-1]
    assert len(sent["images"]) == 2 and sent["model"] == "doubao-seedance-1-0-pro-250528"


def test_a_manifest_asking_a_model_for_a_mode_it_lacks_is_rejected_before_any_call(pipeline, sim):
    body = {"first_frame": "a.png", "last_frame": "b.png", "model": "doubao-seedance-1-0-pro-fast-251015"}
    outcome = pipeline.submit(pipeline.upload("uploads/clips/fast.json", json.dumps(body).encode()))["outcomes"][0]
    assert outcome["outcome"] == "REJECTED"
    assert "takes a first frame only, not a first and a last frame" in outcome["reason"]
    assert sim.counters.submit == 0


def test_a_bad_manifest_is_rejected_with_field_level_messages_and_no_provider_call(pipeline, sim):
    event = pipeline.upload("uploads/clips/bad.json", json.dumps({"first_frame": "a.png", "duration": 7}).encode())
    outcome = pipeline.submit(event)["outcomes"][0]
    assert outcome["outcome"] == "REJECTED"
    assert "'duration'" in outcome["reason"]
    assert sim.counters.submit == 0


def test_a_manifest_naming_a_missing_or_bad_frame_is_rejected(pipeline, sim, stack):
    put(stack, "uploads/clips/_frames/tiny.png", image_bytes(200, 200, "PNG"))
    missing = pipeline.submit(pipeline.upload("uploads/clips/missing.json", b'{"first_frame": "_frames/none.png"}'))
    tiny = pipeline.submit(pipeline.upload("uploads/clips/tiny.json", b'{"first_frame": "_frames/tiny.png"}'))
    assert missing["outcomes"][0]["outcome"] == "REJECTED" and "does not exist" in missing["outcomes"][0]["reason"]
    assert tiny["outcomes"][0]["outcome"] == "REJECTED" and "tiny.png" in tiny["outcomes"][0]["reason"]
    assert sim.counters.submit == 0


def test_frames_uploaded_beside_a_manifest_make_no_job_of_their_own(pipeline, sim):
    outcome = pipeline.submit(pipeline.upload("uploads/clips/_frames/x.png", image_bytes(fmt="PNG")))["outcomes"][0]
    assert outcome["outcome"] == "IGNORED"
