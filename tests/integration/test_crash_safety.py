"""Crashes at any point leave no half-written output and no stuck job; a crash never causes a second submission."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from seedance_local.harness import REPO_ROOT
from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

MIB = 1024 * 1024


def breaks_once(size: int, break_after: int):
    """The first download stops mid-stream, as a CDN dropping the connection would; later ones are whole."""
    calls = []

    def factory(task):
        calls.append(task.task_id)
        first = len(calls) == 1

        def chunks():
            sent = 0
            while sent < size:
                if first and sent >= break_after:
                    raise ConnectionResetError("the CDN went away")
                sent += MIB
                yield b"\x00" * MIB

        return size, chunks()

    return factory


def slow_body(size: int, pause: float):
    def factory(task):
        def chunks():
            for _ in range(size // MIB):
                time.sleep(pause)
                yield b"\x01" * MIB

        return size, chunks()

    return factory


def no_visible_video(stack) -> bool:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="videos/")
    return listed.get("KeyCount", 0) == 0


def test_a_transfer_that_breaks_midway_is_aborted_and_finished_by_a_later_attempt(make_pipeline, sim, stack):
    sim.knobs.video_body_factory = breaks_once(30 * MIB, break_after=12 * MIB)
    pipeline = make_pipeline(MULTIPART_CHUNK_BYTES=str(5 * MIB))
    pipeline.submit(pipeline.upload("uploads/crash.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/crash.jpg"]

    assert job.status is JobStatus.SUCCEEDED
    assert job.delivery_attempts == 2, "the first, broken transfer should have been retried once"
    assert sim.counters.download == 2
    size = stack.client("s3").head_object(Bucket=stack.bucket, Key=job.outputs.video_key)["ContentLength"]
    assert size == 30 * MIB
    assert not stack.client("s3").list_multipart_uploads(Bucket=stack.bucket).get("Uploads"), "broken upload left open"
    assert sim.counters.tasks_created == 1


def test_a_broken_transfer_leaves_no_visible_object(make_pipeline, sim, stack):
    sim.knobs.video_body_factory = breaks_once(30 * MIB, break_after=12 * MIB)
    pipeline = make_pipeline(MULTIPART_CHUNK_BYTES=str(5 * MIB), MAX_DELIVERY_ATTEMPTS="1")
    pipeline.submit(pipeline.upload("uploads/crash.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/crash.jpg"]
    assert job.status is JobStatus.FAILED and job.error.code == "RESULT_UNAVAILABLE"
    assert no_visible_video(stack)
    assert not stack.client("s3").list_multipart_uploads(Bucket=stack.bucket).get("Uploads")


POLL_IN_CHILD = """
import json, os, sys
sys.path[:0] = [os.path.join(sys.argv[1], p) for p in ("layers/common", "dev", "functions/submit", "functions/poll")]
from seedance_local.harness import LambdaContext, load_handler, schedule_event
print(json.dumps(load_handler("poll").lambda_handler(schedule_event(), LambdaContext("PollFunction", 120))))
"""


def test_a_poller_killed_mid_transfer_leaves_no_object_and_its_lease_expires(make_pipeline, sim, stack):
    sim.knobs.video_body_factory = slow_body(40 * MIB, pause=0.25)
    # A 3 s lease, so the test need not wait long for it to expire; the provider call margin shrinks with it.
    pipeline = make_pipeline(MULTIPART_CHUNK_BYTES=str(5 * MIB), LEASE_SECONDS="3", PROVIDER_CALL_MARGIN_SECONDS="0.5")
    pipeline.submit(pipeline.upload("uploads/killed.jpg", image_bytes()))
    time.sleep(1.5)  # the task finishes at the simulator

    env = {**os.environ, **pipeline.environment}
    child = subprocess.Popen(
        [sys.executable, "-c", POLL_IN_CHILD, str(REPO_ROOT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while sim.counters.download == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # some parts are uploaded
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)

    assert no_visible_video(stack), "a killed transfer must not leave a visible object"
    job = pipeline.jobs()["uploads/killed.jpg"]
    assert not job.status.is_terminal and job.lease_owner is not None  # the dead poller still holds it

    sim.knobs.video_body_factory = slow_body(10 * MIB, pause=0)
    time.sleep(3.5)  # the lease runs out
    job = pipeline.run_until_terminal(timeout=60)["uploads/killed.jpg"]
    assert job.status is JobStatus.SUCCEEDED
    size = stack.client("s3").head_object(Bucket=stack.bucket, Key=job.outputs.video_key)["ContentLength"]
    assert size == 10 * MIB
    assert sim.counters.tasks_created == 1


def test_a_crash_after_the_provider_accepted_never_leads_to_a_second_submission(make_pipeline, sim, stack, monkeypatch):
    # The claim lease must leave room for a POST (at least 5 s inside the lease, less the call margin).
    pipeline = make_pipeline(CLAIM_LEASE_SECONDS="6", PROVIDER_CALL_MARGIN_SECONDS="0.5")
    from seedance_pipeline.logic import submission

    real_planned_check = submission.planned_check

    def crash(*args, **kwargs):
        raise SystemExit("the Lambda container died right after the provider's answer")

    monkeypatch.setattr(submission, "planned_check", crash)
    with pytest.raises(SystemExit):
        pipeline.submit(pipeline.upload("uploads/window.jpg", image_bytes()))
    monkeypatch.setattr(submission, "planned_check", real_planned_check)
    assert sim.counters.tasks_created == 1

    time.sleep(6.2)  # the claim lease runs out; the poller finds the job
    items = stack.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    job_ids = [i["job_id"]["S"] for i in items if not i["job_id"]["S"].startswith("#")]
    pipeline.job_ids["uploads/window.jpg"] = job_ids[0]
    job = pipeline.run_until_terminal(timeout=30)["uploads/window.jpg"]
    assert job.status is JobStatus.FAILED and job.error.code == "SUBMISSION_UNCERTAIN"
    assert sim.counters.tasks_created == 1, "the job was submitted a second time"
    assert "jobs retry" in job.error.message
