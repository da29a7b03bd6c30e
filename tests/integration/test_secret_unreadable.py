"""An unreadable API key secret is our own outage, not an uncertain submission: jobs wait, nothing is sent."""

from __future__ import annotations

import io
import json

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes
from tests.support.stack_settings import API_KEY


def test_a_secret_scheduled_for_deletion_keeps_jobs_waiting_until_it_is_restored(make_pipeline, sim, stack):
    secrets = stack.client("secretsmanager")
    secrets.delete_secret(SecretId=stack.secret_id, RecoveryWindowInDays=7)
    logs = io.StringIO()
    pipeline = make_pipeline(log_stream=logs)

    outcome = pipeline.submit(pipeline.upload("uploads/locked.jpg", image_bytes()))["outcomes"][0]
    assert outcome["outcome"] == "WAITING"
    pipeline.poll(timeout_seconds=25)
    job = pipeline.jobs()["uploads/locked.jpg"]
    assert job.status is JobStatus.WAITING and job.last_error.code == "SECRET_UNAVAILABLE"
    assert job.submission_started_at is None and job.attempts == 0
    assert sim.counters.tasks_created == 0

    errors = [line for line in map(json.loads, logs.getvalue().splitlines()) if line["level"] == "ERROR"]
    assert errors and all(line["secret_id"] == stack.secret_id for line in errors)
    assert API_KEY not in logs.getvalue()

    secrets.restore_secret(SecretId=stack.secret_id)
    job = pipeline.run_until_terminal(timeout=90)["uploads/locked.jpg"]
    assert job.status is JobStatus.SUCCEEDED and sim.counters.tasks_created == 1
