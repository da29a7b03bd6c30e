"""Sending a job with a callback URL: the body carries it, the record never does, and the schedule waits longer."""

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from seedance_pipeline.errors import SecretUnavailable
from seedance_pipeline.logic.check_schedule import CALLBACK_FIRST_CHECK_FACTOR, expected_ready_seconds
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.callback_token import callback_token
from tests.support.expect import present
from tests.support.fakes import FakeSecretText, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
CALLBACK_BASE = "https://abc.lambda-url.us-east-1.on.aws/"
CALLBACKS: dict[str, Any] = {
    "callback_url": CALLBACK_BASE,
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
}


def submit(runtime, storage, key="uploads/cat.jpg"):
    storage.add(BUCKET, key, image_bytes())
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer="01", etag="e1"), runtime, owner="s")


def test_an_ark_request_carries_the_jobs_callback_url_and_the_record_keeps_neither_url_nor_token():
    runtime, store, storage, provider = make_runtime(provider_api="ark", **CALLBACKS)
    outcome = submit(runtime, storage)
    job_id = present(outcome.job_id)
    (body,) = provider.submissions
    url = body["callback_url"]
    assert url.startswith(CALLBACK_BASE + "?")
    query = parse_qs(urlsplit(url).query)
    token = callback_token(present(runtime.signing_key).get(), job_id)
    assert query == {"job": [job_id], "token": [token]}
    record = str(store.items[job_id])
    assert token not in record and CALLBACK_BASE not in record
    assert store.job(job_id).expects_callback is True


def test_a_unified_request_carries_the_url_in_the_configured_field_only():
    runtime, store, storage, provider = make_runtime(callback_field="notify_url", **CALLBACKS)
    submit(runtime, storage)
    (body,) = provider.submissions
    assert body["notify_url"].startswith(CALLBACK_BASE) and "callback_url" not in body


def test_a_unified_stack_without_a_callback_field_sends_no_url_and_expects_no_callback():
    runtime, store, storage, provider = make_runtime(**CALLBACKS)
    job_id = present(submit(runtime, storage).job_id)
    (body,) = provider.submissions
    assert not any(isinstance(v, str) and CALLBACK_BASE in v for v in body.values())
    assert store.job(job_id).expects_callback is False
    assert runtime.signing_key is not None and runtime.signing_key.reads == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("scale", [1.0, 0.05])
def test_a_job_expecting_a_callback_is_first_checked_several_times_later_than_its_video_should_be_ready(scale):
    plain, plain_store, plain_storage, _ = make_runtime(provider_api="ark", check_schedule_scale=scale)
    called, called_store, called_storage, _ = make_runtime(provider_api="ark", check_schedule_scale=scale, **CALLBACKS)
    without = plain_store.job(submit(plain, plain_storage).job_id)
    with_callback = called_store.job(submit(called, called_storage).job_id)
    ready = expected_ready_seconds(present(with_callback.request)) * scale
    assert present(without.next_check_at) - present(without.submitted_at) == pytest.approx(ready)
    assert present(with_callback.next_check_at) - present(with_callback.submitted_at) == pytest.approx(
        ready * CALLBACK_FIRST_CHECK_FACTOR
    )
    assert CALLBACK_FIRST_CHECK_FACTOR >= 3


def test_a_signing_key_outage_keeps_the_job_waiting_with_nothing_marked_sent(caplog):
    runtime, store, storage, provider = make_runtime(provider_api="ark", **CALLBACKS)
    outage = SecretUnavailable(
        "the callback signing key secret cb could not be read (ThrottlingException)", secret_id="cb", cause="Throttle"
    )
    key = FakeSecretText(error=outage)
    runtime.signing_key = key
    with caplog.at_level(logging.ERROR):
        job_id = present(submit(runtime, storage).job_id)
    job = store.job(job_id)
    assert job.status is JobStatus.WAITING and job.submission_started_at is None and job.attempts == 0
    assert present(job.last_error).code == "SECRET_UNAVAILABLE" and "signing key" in present(job.last_error).message
    assert provider.submissions == [] and store.slots == set()
    assert any(r.levelno == logging.ERROR and getattr(r, "cause", None) == "Throttle" for r in caplog.records)

    key.error = None
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    job = store.job(job_id)
    assert job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and len(provider.submissions) == 1
    assert job.expects_callback and provider.submissions[0]["callback_url"].startswith(CALLBACK_BASE)
