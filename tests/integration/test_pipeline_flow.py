"""The whole path over real HTTP: S3 events into the submit handler, the poll handler until every job is done."""

from __future__ import annotations

import threading

import pytest
import requests

from seedance_local.harness import s3_put_event
from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

# Every test here runs against both provider dialects.
pytestmark = pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)

KEYS = ["uploads/My Photos/kitten (1).jpg", "uploads/beach.png", "uploads/a/b/c/tower+night.webp"]


def test_three_uploads_become_three_videos_at_the_documented_keys(pipeline, sim, stack):
    formats = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
    for key in KEYS:
        event = pipeline.upload(key, image_bytes(800, 600, formats[key.rsplit(".", 1)[1]]), {"resolution": "480p"})
        assert event["Records"][0]["s3"]["object"]["key"] != key or " " not in key  # URL-encoded like S3 sends it
        pipeline.submit(event)

    jobs = pipeline.run_until_terminal(timeout=120)

    s3 = stack.client("s3")
    expected_outputs = {
        "uploads/My Photos/kitten (1).jpg": "videos/My Photos/kitten (1).jpg",
        "uploads/beach.png": "videos/beach.png",
        "uploads/a/b/c/tower+night.webp": "videos/a/b/c/tower+night.webp",
    }
    for key, job in jobs.items():
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.outputs.video_key == f"{expected_outputs[key]}.{job.job_id[:12]}.mp4"
        assert job.outputs.sidecar_key == f"{expected_outputs[key]}.json"
        stored = s3.get_object(Bucket=stack.bucket, Key=job.outputs.video_key)["Body"].read()
        served = requests.get(f"{sim.base_url}/results/{job.task_id}.mp4", timeout=10).content
        assert stored == served and stored[4:8] == b"ftyp"
        sidecar = s3.get_object(Bucket=stack.bucket, Key=job.outputs.sidecar_key)["Body"].read()
        assert job.task_id.encode() in sidecar
    assert sim.counters.submit == 3


def test_the_sample_event_file_drives_the_handler(pipeline, sim, stack):
    """events/s3-put.json names `uploads/My Photos/kitten (1).jpg`; put that object and send the file as is."""
    import json

    from seedance_local.harness import EVENTS_DIR

    event = json.loads((EVENTS_DIR / "s3-put.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = stack.bucket
    del event["Records"][0]["s3"]["object"]["eTag"]  # the file's ETag is illustrative; the real one differs
    stack.client("s3").put_object(Bucket=stack.bucket, Key="uploads/My Photos/kitten (1).jpg", Body=image_bytes())
    result = pipeline.submit(event)
    assert result["outcomes"][0]["key"] == "uploads/My Photos/kitten (1).jpg"
    assert result["outcomes"][0]["outcome"] == "SUBMITTED"


def test_a_duplicate_delivery_makes_one_submission(pipeline, sim):
    event = pipeline.upload("uploads/dup.jpg", image_bytes())
    first, second = pipeline.submit(event), pipeline.submit(event)
    assert first["outcomes"][0]["outcome"] == "SUBMITTED"
    assert second["outcomes"][0]["outcome"] == "DUPLICATE"
    assert sim.counters.submit == 1


def test_concurrent_duplicate_deliveries_make_one_submission(pipeline, sim):
    event = pipeline.upload("uploads/concurrent.jpg", image_bytes())
    results: list[dict] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        results.append(pipeline.submit(event))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(r["outcomes"][0]["outcome"] for r in results)
    assert outcomes == ["DUPLICATE"] * 7 + ["SUBMITTED"]
    assert sim.counters.submit == 1


def test_provider_failure_ends_failed_with_the_providers_reason(pipeline, sim, dialect):
    sim.knobs.failure_reason = "The request failed because the output video may contain sensitive information."
    pipeline.submit(pipeline.upload("uploads/moderated.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/moderated.jpg"]
    assert job.status is JobStatus.FAILED
    reason = "The request failed because the output video may contain sensitive information."
    # Both dialects carry the moderation code (Ark's error.code, the gateway's data.error.code): the reason says
    # what was flagged and what to do, and keeps the provider's own words.
    assert job.error.code == "MODERATION_OUTPUT_VIDEO"
    assert job.error.message.startswith("moderation flagged the output video (OutputVideoSensitiveContentDetected)")
    assert job.error.message.endswith(reason)


def test_a_multipart_upload_event_is_handled_like_a_put(pipeline, sim, stack):
    data = image_bytes()
    response = stack.client("s3").put_object(Bucket=stack.bucket, Key="uploads/mpu.jpg", Body=data)
    event = s3_put_event(
        stack.bucket,
        "uploads/mpu.jpg",
        size=len(data),
        etag=response["ETag"].strip('"'),
        sequencer="00AA",
        event_name="ObjectCreated:CompleteMultipartUpload",
    )
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "SUBMITTED"


def test_the_poll_path_issues_no_scan(pipeline, sim):
    calls: list[str] = []
    dynamodb = pipeline.runtime.store._client
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    for n in range(3):
        pipeline.submit(pipeline.upload(f"uploads/scan-{n}.jpg", image_bytes()))
    calls.clear()
    pipeline.run_until_terminal(timeout=60)
    assert calls, "the poller made no DynamoDB calls at all"
    assert "Scan" not in calls
    assert "Query" in calls
