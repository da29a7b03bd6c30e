"""A refused key is a configuration fault: jobs wait (never burned as FAILED), operators are told, work resumes."""

from __future__ import annotations

import io
import json

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes
from tests.support.stack_settings import API_KEY


def set_secret(stack, value: str) -> None:
    stack.client("secretsmanager").put_secret_value(SecretId=stack.secret_id, SecretString=value)


def test_a_wrong_key_keeps_jobs_waiting_and_work_resumes_once_it_is_fixed(make_pipeline, sim, stack, capsys):
    set_secret(stack, "sk-wrong-key-000000")
    logs = io.StringIO()
    pipeline = make_pipeline(log_stream=logs, POWERTOOLS_METRICS_DISABLED="false")
    outcome = pipeline.submit(pipeline.upload("uploads/auth.jpg", image_bytes()))["outcomes"][0]
    assert outcome["outcome"] == "WAITING"
    pipeline.poll(timeout_seconds=25)
    job = pipeline.jobs()["uploads/auth.jpg"]
    assert job.status is JobStatus.WAITING and job.last_error.code == "PROVIDER_AUTH"
    assert sim.counters.tasks_created == 0

    log_lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert any(line["level"] == "ERROR" and "fix the key" in line["message"] for line in log_lines)
    assert '"ProviderAuthErrors"' in capsys.readouterr().out  # the EMF metric an alarm can watch

    set_secret(stack, API_KEY)
    job = pipeline.run_until_terminal(timeout=60)["uploads/auth.jpg"]
    assert job.status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1


def test_a_key_revoked_mid_job_does_not_fail_the_running_job(pipeline, sim, stack):
    pipeline.submit(pipeline.upload("uploads/revoked.jpg", image_bytes()))
    sim.knobs.api_key = "rotated-elsewhere"
    pipeline.poll(timeout_seconds=25)
    job = pipeline.jobs()["uploads/revoked.jpg"]
    assert not job.status.is_terminal and job.last_error.code == "PROVIDER_AUTH"
    sim.knobs.api_key = API_KEY
    assert pipeline.run_until_terminal(timeout=60)["uploads/revoked.jpg"].status is JobStatus.SUCCEEDED
