"""Provider faults on both endpoints: retried within bounds, then left for a later poll; never a lost job."""

from __future__ import annotations

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

# Every test here runs against both provider dialects.
pytestmark = pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)


def submit_one(pipeline, key="uploads/fault.jpg"):
    return pipeline.submit(pipeline.upload(key, image_bytes()))["outcomes"][0]


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit_next": 2, "retry_after": 0.2},
        {"rate_limit_next": 2, "retry_after": None},
        {"server_errors_next": 2, "server_error_status": 500},
        {"server_errors_next": 2, "server_error_status": 502},
        {"server_errors_next": 2, "server_error_status": 503},
        {"drop_connections_next": 2},
        {"malformed_json_next": 2},
    ],
    ids=["429-retry-after", "429-no-retry-after", "500", "502", "503", "connection-reset", "malformed-json"],
)
def test_status_check_faults_are_retried_and_the_job_still_succeeds(pipeline, sim, fault):
    assert submit_one(pipeline)["outcome"] == "SUBMITTED"
    sim.knobs.fault_methods = "GET"
    for name, value in fault.items():
        setattr(sim.knobs, name, value)
    job = pipeline.run_until_terminal(timeout=90)["uploads/fault.jpg"]
    assert job.status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1


def test_a_long_status_outage_leaves_the_job_for_a_later_poll(pipeline, sim):
    submit_one(pipeline)
    sim.knobs.fault_methods = "GET"
    sim.knobs.server_errors_next = 1000
    pipeline.poll(timeout_seconds=25)
    job = pipeline.jobs()["uploads/fault.jpg"]
    assert job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    assert job.last_error.code in ("InternalServiceError", "PROVIDER_UNAVAILABLE")
    sim.knobs.server_errors_next = 0
    assert pipeline.run_until_terminal(timeout=60)["uploads/fault.jpg"].status is JobStatus.SUCCEEDED


def test_read_timeouts_on_status_checks_are_retried_later(make_pipeline, sim):
    pipeline = make_pipeline(READ_TIMEOUT_SECONDS="0.3", HTTP_RETRIES="1")
    submit_one(pipeline)
    sim.knobs.latency_seconds = 0.6
    pipeline.poll(timeout_seconds=25)
    job = pipeline.jobs()["uploads/fault.jpg"]
    assert not job.status.is_terminal and job.last_error.code == "PROVIDER_UNAVAILABLE"
    sim.knobs.latency_seconds = 0
    assert pipeline.run_until_terminal(timeout=60)["uploads/fault.jpg"].status is JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit_next": 2, "retry_after": 0.2},
        {"rate_limit_next": 2, "retry_after": None},
        {"server_errors_next": 2, "server_error_status": 503},
    ],
    ids=["429-retry-after", "429-no-retry-after", "503"],
)
def test_submission_faults_the_provider_cannot_have_accepted_are_retried_at_once(pipeline, sim, fault):
    sim.knobs.fault_methods = "POST"
    for name, value in fault.items():
        setattr(sim.knobs, name, value)
    assert submit_one(pipeline)["outcome"] == "SUBMITTED"
    assert sim.counters.submit == 3 and sim.counters.tasks_created == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_server_error_to_a_submission_may_hide_a_task_so_it_is_never_resent(pipeline, sim, status):
    """A 500 may come after the task was made, a 502/504 from a gateway that passed the request on: uncertain."""
    sim.knobs.fault_methods = "POST"
    sim.knobs.server_errors_next = 1
    sim.knobs.server_error_status = status
    outcome = submit_one(pipeline)
    assert outcome["outcome"] == "FAILED"
    job = pipeline.jobs()["uploads/fault.jpg"]
    assert job.error.code == "SUBMISSION_UNCERTAIN" and f"HTTP {status}" in job.error.message
    pipeline.poll(timeout_seconds=25)
    assert sim.counters.submit == 1
    assert pipeline.runtime.store.slot_holders() == set()


def test_persistent_throttling_keeps_the_job_waiting_until_capacity_returns(pipeline, sim):
    sim.knobs.fault_methods = "POST"
    sim.knobs.rate_limit_next = 1000
    sim.knobs.retry_after = 0.1
    assert submit_one(pipeline)["outcome"] == "WAITING"
    job = pipeline.jobs()["uploads/fault.jpg"]
    assert job.last_error.code == "ModelAccountRpmRateLimitExceeded"
    assert pipeline.runtime.store.slot_holders() == set()  # the slot went back
    sim.knobs.rate_limit_next = 0
    assert pipeline.run_until_terminal(timeout=60)["uploads/fault.jpg"].status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1


@pytest.mark.parametrize("fault", [{"drop_connections_next": 1}, {"malformed_json_next": 1}], ids=["reset", "bad-json"])
def test_an_ambiguous_submission_is_never_sent_twice(pipeline, sim, fault):
    """After the body left, a reset or an unreadable 200 may hide a billed task: fail loudly, do not resend."""
    sim.knobs.fault_methods = "POST"
    for name, value in fault.items():
        setattr(sim.knobs, name, value)
    outcome = submit_one(pipeline)
    assert outcome["outcome"] == "FAILED"
    job = pipeline.jobs()["uploads/fault.jpg"]
    assert job.error.code == "SUBMISSION_UNCERTAIN" and "may have created the task" in job.error.message
    pipeline.poll(timeout_seconds=25)
    assert sim.counters.submit == 1
    assert pipeline.runtime.store.slot_holders() == set()


def test_a_submission_read_timeout_is_never_sent_twice(make_pipeline, sim):
    pipeline = make_pipeline(READ_TIMEOUT_SECONDS="0.3")
    sim.knobs.latency_seconds = 0.6
    outcome = submit_one(pipeline)
    assert outcome["outcome"] == "FAILED"
    assert pipeline.jobs()["uploads/fault.jpg"].error.code == "SUBMISSION_UNCERTAIN"
    assert sim.counters.submit == 1


def test_a_submit_invocation_near_its_end_sends_nothing_and_leaves_the_job_waiting(pipeline, sim):
    """The handler gives the provider client the invocation's remaining time: with less than the call margin left,
    no POST leaves (it could not be answered before Lambda stops the function), and the job waits, unpaid."""
    outcome = pipeline.submit(pipeline.upload("uploads/late.jpg", image_bytes()), timeout_seconds=5)["outcomes"][0]
    job = pipeline.jobs()["uploads/late.jpg"]
    assert outcome["outcome"] == "WAITING" and job.submission_started_at is None
    assert sim.counters.tasks_created == 0
    assert pipeline.run_until_terminal(timeout=90)["uploads/late.jpg"].status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1
