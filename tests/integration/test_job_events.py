"""Every terminal transition puts one EventBridge event a downstream pipeline can route on (docs/outputs.md: Events)."""

from __future__ import annotations

import re

from seedance_local.harness import REPO_ROOT
from tests.support.event_capture import EventCapture
from tests.support.expect import present
from tests.support.images import image_bytes

DETAIL_KEYS = {"job_id", "task_id", "status", "source", "outputs", "request", "error", "timings", "tokens",
               "moderation", "resubmissions", "draft", "batch"}  # fmt: skip
DETAIL_TYPES = {"Video Generation Succeeded", "Video Generation Failed", "Video Generation Rejected",
                "Video Generation Timed Out"}  # fmt: skip


def test_the_documented_event_schema_names_exactly_the_fields_and_types_the_events_carry():
    # The events below are checked against DETAIL_KEYS and DETAIL_TYPES; the docs' table against the same sets.
    page = (REPO_ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    table = page[page.index("## Events for downstream pipelines") :]
    documented = set(re.findall(r"`detail\.(\w+)`", table))
    assert documented == DETAIL_KEYS
    assert set(re.findall(r"`(Video Generation [A-Za-z ]+?)`", table)) == DETAIL_TYPES


def events_by_key(capture: EventCapture) -> dict[str, dict]:
    return {e["detail"]["source"]["key"]: e for e in capture.drain()}


def test_a_success_event_carries_the_source_and_output_uris_the_request_and_timings(pipeline, stack):
    capture = EventCapture(stack)
    pipeline.submit(pipeline.upload("uploads/events/ok.jpg", image_bytes(), {"return-last-frame": "true"}))
    job = pipeline.run_until_terminal(timeout=60)["uploads/events/ok.jpg"]
    event = events_by_key(capture)["uploads/events/ok.jpg"]
    assert event["source"] == "seedance.pipeline"
    assert event["detail-type"] == "Video Generation Succeeded"
    detail = event["detail"]
    assert set(detail) == DETAIL_KEYS
    assert detail["job_id"] == job.job_id and detail["task_id"] == job.task_id
    assert detail["source"]["uri"] == f"s3://{stack.bucket}/uploads/events/ok.jpg"
    tag = job.job_id[:12]
    assert detail["outputs"]["video"] == f"s3://{stack.bucket}/videos/events/ok.jpg.{tag}.mp4"
    assert detail["outputs"]["last_frame"] == f"s3://{stack.bucket}/videos/events/ok.jpg.{tag}.last-frame.png"
    assert detail["outputs"]["sidecar"] == f"s3://{stack.bucket}/videos/events/ok.jpg.json"
    assert detail["request"]["return_last_frame"] is True
    assert detail["timings"]["created_at"] and detail["timings"]["seconds_total"] > 0
    assert detail["tokens"] == {"estimated": job.estimated_tokens, "billed": job.billed_tokens}
    assert present(job.estimated_tokens) > 0 and present(job.billed_tokens) > 0  # the simulator reports usage


def test_failed_rejected_and_timed_out_jobs_each_put_their_own_event(make_pipeline, sim, stack):
    capture = EventCapture(stack)
    pipeline = make_pipeline(MAX_JOB_AGE_MINUTES="0.05")
    pipeline.submit(pipeline.upload("uploads/events/bad.jpg", b"not an image"))
    sim.knobs.fail_next = 1
    pipeline.submit(pipeline.upload("uploads/events/failed.jpg", image_bytes()))
    pipeline.run_until_terminal(timeout=60)
    sim.knobs.never_finish = True
    pipeline.submit(pipeline.upload("uploads/events/stuck.jpg", image_bytes()))
    pipeline.run_until_terminal(timeout=60)

    events = events_by_key(capture)
    assert events["uploads/events/bad.jpg"]["detail-type"] == "Video Generation Rejected"
    assert events["uploads/events/bad.jpg"]["detail"]["error"]["code"] == "NOT_AN_IMAGE"
    assert events["uploads/events/failed.jpg"]["detail-type"] == "Video Generation Failed"
    assert events["uploads/events/failed.jpg"]["detail"]["error"]["message"]
    assert events["uploads/events/stuck.jpg"]["detail-type"] == "Video Generation Timed Out"
    assert events["uploads/events/stuck.jpg"]["detail"]["outputs"] is None
    assert all(set(e["detail"]) == DETAIL_KEYS for e in events.values())


def test_events_go_to_the_configured_bus(make_pipeline, stack):
    stack.client("events").create_event_bus(Name="media-pipeline")
    capture = EventCapture(stack, bus="media-pipeline")
    pipeline = make_pipeline(EVENT_BUS_NAME="media-pipeline")
    pipeline.submit(pipeline.upload("uploads/events/bus.jpg", image_bytes()))
    pipeline.run_until_terminal(timeout=60)
    assert [e["detail-type"] for e in capture.drain()] == ["Video Generation Succeeded"]
