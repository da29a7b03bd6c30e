"""What callbacks may cost and decide: duplicates, floods, a lease held by another worker, evidence of a task a
refused POST created. A callback brings a check forward at most once per job per interval, never a delivery retry."""

import json
import logging
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seedance_pipeline.errors import ProviderRejected, ProviderUnavailable, ResultUnavailable
from seedance_pipeline.logic.callback_intake import HANDOFF_INTERVAL_SECONDS, CallbackOutcome, answer_callback
from seedance_pipeline.logic.callback_worker import HandoffResult, run_handoff
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.observability import MetricName, metrics
from seedance_pipeline.rules.callback_token import callback_token
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.triggers.callback_events import CallbackRequest, parse_handoff_event
from tests.support.example_counts import examples
from tests.support.expect import present
from tests.support.fakes import FakeHandoff, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:stack-CallbackWorkerFunction-abc"
CALLBACKS: dict[str, Any] = {
    "provider_api": "ark",
    "callback_url": "https://abc.lambda-url.us-east-1.on.aws/",
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
    "callback_worker_function": FUNCTION,
}
UPLOAD = Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1")
JOB_ID = job_id_for(UPLOAD)
TOKEN = callback_token("k" * 64, JOB_ID)  # FakeSecretText's key


def stack(**settings: Any) -> Any:
    runtime, store, storage, provider = make_runtime(**{**CALLBACKS, **settings})
    storage.add(BUCKET, UPLOAD.key, image_bytes())
    return runtime, store, provider


def submitted(**settings: Any) -> Any:
    runtime, store, provider = stack(**settings)
    accept_upload(UPLOAD, runtime, owner="s")
    return runtime, store, provider, present(store.job(JOB_ID).task_id)


def post(runtime: Any, task_id: str, status: str = "succeeded") -> Any:
    body = json.dumps({"id": task_id, "status": status, "content": {"video_url": "https://cdn.example.com/v.mp4"}})
    request = CallbackRequest(method="POST", job_id=JOB_ID, token=TOKEN, body=body)
    return answer_callback(request, runtime)


def run_handoffs(runtime: Any) -> list[Any]:
    handoff = runtime.handoff
    assert isinstance(handoff, FakeHandoff)
    results = []
    for event in handoff.take():
        results.append(run_handoff(parse_handoff_event(event), runtime, owner="worker"))
    return results


# --- 3. a callback never brings a delivery retry forward ---------------------------------------------------------


def test_duplicate_callbacks_never_retry_a_failed_delivery_before_its_schedule():
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)  # the task is done; the result CDN answers 503 for the next 3 s
    runtime.downloader.error = ResultUnavailable("the result URL answered 503")
    for _ in range(5):  # Ark's own retries of a succeeded callback, 0.5 s apart
        post(runtime, task_id)
        run_handoffs(runtime)
        runtime.clock.advance(0.5)
    job = store.job(JOB_ID)
    assert job.status is JobStatus.RUNNING or job.status is JobStatus.SUBMITTED, job.error
    assert job.delivery_attempts == 1 and present(job.next_check_at) > runtime.clock()
    runtime.downloader.error = None  # the CDN is back
    runtime.clock.advance(15)
    run_poll(runtime, owner="poller", time_left=lambda: 60.0)
    job = store.job(JOB_ID)
    assert job.status is JobStatus.SUCCEEDED and job.delivery_attempts == 2


# --- 11. a flood of genuine-token claims ---------------------------------------------------------------------------


def test_a_flood_of_premature_claims_costs_one_status_call_per_job_per_interval():
    runtime, store, provider, task_id = submitted()
    provider.ready_after = 10_000  # still generating: every "succeeded" claim is premature
    handed_off = 0
    for _ in range(600):  # 600 claims in a minute, 0.1 s apart
        if post(runtime, task_id).outcome is CallbackOutcome.ACCEPTED:
            handed_off += 1
        run_handoffs(runtime)
        runtime.clock.advance(0.1)
    minute_share = 60 / HANDOFF_INTERVAL_SECONDS
    assert provider.gets <= minute_share and handed_off <= minute_share
    assert store.job(JOB_ID).status in (JobStatus.SUBMITTED, JobStatus.RUNNING)


@settings(max_examples=examples(30), deadline=None)
@given(gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=120))
def test_however_claims_are_spaced_a_job_gets_at_most_one_handoff_per_interval(gaps):
    runtime, _, provider, task_id = submitted()
    provider.ready_after = 10_000
    checks_at: list[float] = []
    for gap in gaps:
        runtime.clock.advance(gap)
        before = provider.gets
        post(runtime, task_id)
        run_handoffs(runtime)
        checks_at.extend([runtime.clock()] * (provider.gets - before))
    assert all(b - a >= HANDOFF_INTERVAL_SECONDS for a, b in pairwise(checks_at))


# --- 12. a hand-off behind a lease ends at once -----------------------------------------------------------------------


def test_a_handoff_that_finds_the_job_leased_ends_at_once_without_sleeping():
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    store.acquire_lease(store.job(JOB_ID), owner="poller", now=runtime.clock(), lease_seconds=300)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        runtime.clock.advance(seconds)

    runtime.sleep = sleep
    assert post(runtime, task_id).outcome is CallbackOutcome.ACCEPTED
    assert run_handoffs(runtime) == [HandoffResult.LEASED]
    assert slept == [] and provider.gets == 0 and store.job(JOB_ID).lease_owner == "poller"


# --- 4. a callback that proves a refused POST created a task ------------------------------------------------------


def forwarded_then_refused(provider: Any) -> None:
    """A gateway forwards the POST (the task exists, billed) and answers 503 with a readable error."""
    real_submit = provider.submit

    def submit(body: dict[str, Any], *, deadline: float | None = None) -> str:
        real_submit(body, deadline=deadline)
        raise ProviderUnavailable("the gateway answered 503: upstream timeout")

    provider.submit = submit


def test_a_callback_about_a_task_a_refused_post_created_stops_the_resend(caplog):
    runtime, store, provider = stack()
    forwarded_then_refused(provider)
    accept_upload(UPLOAD, runtime, owner="s")
    assert store.job(JOB_ID).status is JobStatus.WAITING and len(provider.submissions) == 1
    runtime.clock.advance(2)
    with caplog.at_level(logging.WARNING):
        answer = post(runtime, "cgt-00001")
        run_handoffs(runtime)
    assert answer.status_code == 200
    for _ in range(5):  # the poller's turns: nothing is sent again
        runtime.clock.advance(30)
        run_poll(runtime, owner="poller", time_left=lambda: 60.0)
    job = store.job(JOB_ID)
    assert len(provider.submissions) == 1, "the refused POST's task was paid for twice"
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"
    assert "cgt-00001" in present(job.error).message and TOKEN not in caplog.text
    assert any("cgt-00001" in str(r.__dict__) for r in caplog.records if r.levelno == logging.WARNING)


def test_a_callback_of_a_task_no_provider_knows_leaves_the_waiting_job_to_be_sent():
    runtime, store, provider = stack()
    forwarded_then_refused(provider)
    accept_upload(UPLOAD, runtime, owner="s")
    provider.tasks.clear()  # the claimed task does not exist: a forged claim on a leaked URL
    provider.get_error = ProviderRejected("task not found")
    post(runtime, "cgt-00001")
    run_handoffs(runtime)
    assert store.job(JOB_ID).status is JobStatus.WAITING


def test_a_callback_for_a_rejected_job_whose_task_exists_is_warned_and_counted(caplog):
    runtime, store, provider = stack()
    provider.submit_error = ProviderRejected("400 InvalidParameter")
    accept_upload(UPLOAD, runtime, owner="s")
    assert present(store.job(JOB_ID).error).code == "PROVIDER_REJECTED"
    metrics.clear_metrics()
    with caplog.at_level(logging.WARNING):
        answer = post(runtime, "cgt-made-after-all")
    assert answer.status_code == 200 and answer.outcome is CallbackOutcome.IGNORED
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(r.__dict__.get("claimed_task_id") == "cgt-made-after-all" for r in warned)
    assert MetricName.CALLBACKS_ABOUT_UNKNOWN_TASKS in metrics.metric_set
