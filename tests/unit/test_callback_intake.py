"""A provider callback: refused, ignored or handed off; the hand-off confirms with one status call and delivers."""

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from seedance_pipeline.errors import HandoffFailed, SecretUnavailable
from seedance_pipeline.logic.callback_intake import MAX_BODY_BYTES, CallbackOutcome, answer_callback
from seedance_pipeline.logic.callback_worker import run_handoff
from seedance_pipeline.logic.check_schedule import MAX_INTERVAL, MIN_INTERVAL
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.callback_token import callback_token
from seedance_pipeline.triggers.callback_events import (
    CallbackHandoff,
    CallbackRequest,
    handoff_event,
    parse_callback_event,
    parse_handoff_event,
)
from tests.support.expect import present
from tests.support.fakes import FakeHandoff, FakeSecretText, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
FUNCTION = "stack-CallbackWorkerFunction-abc"
CALLBACKS = {
    "callback_worker_function": FUNCTION,
    "provider_api": "ark",
    "callback_url": "https://abc.lambda-url.us-east-1.on.aws/",
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
}
EVENTS = Path(__file__).resolve().parents[2] / "events"


class Stack:
    """A stack with callbacks on (Ark dialect), one submitted job, and its callback URL as the provider got it."""

    def __init__(self, **settings: Any) -> None:
        self.runtime, self.store, self.storage, self.provider = make_runtime(**{**CALLBACKS, **settings})
        self.storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
        upload = Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1")
        self.job_id = present(accept_upload(upload, self.runtime, owner="s").job_id)
        query = parse_qs(urlsplit(self.provider.submissions[0]["callback_url"]).query)
        self.token = query["token"][0]
        self.task_id = present(self.store.job(self.job_id).task_id)
        self.reads: list[str] = []

    @property
    def handoff(self) -> FakeHandoff:
        assert isinstance(self.runtime.handoff, FakeHandoff)
        return self.runtime.handoff

    def count_reads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = self.store.get

        def counted(job_id: str) -> Any:
            self.reads.append(job_id)
            return original(job_id)

        monkeypatch.setattr(self.store, "get", counted)

    def post(
        self, status: str = "succeeded", *, job_id: str | None = None, token: str | None = None, **overrides: Any
    ) -> Any:
        body = {"id": self.task_id, "status": status, "content": {"video_url": "https://cdn.example.com/v.mp4"}}
        request = CallbackRequest(
            method=overrides.pop("method", "POST"),
            job_id=job_id or self.job_id,
            token=token or self.token,
            body=overrides.pop("body", json.dumps(body)),
            is_base64=overrides.pop("is_base64", False),
        )
        return answer_callback(request, self.runtime)

    def deliver_handoffs(self) -> list[Any]:
        results = []
        for event in self.handoff.take():
            results.append(run_handoff(parse_handoff_event(event), self.runtime, owner="callback"))
        return results


def test_a_good_callback_is_handed_off_once_and_delivered_with_one_status_call():
    stack = Stack()
    stack.runtime.clock.advance(50)  # the task is done at the provider
    answer = stack.post()
    assert (answer.status_code, answer.outcome) == (200, CallbackOutcome.ACCEPTED)
    assert stack.handoff.queued == [(FUNCTION, handoff_event(stack.job_id))]
    assert stack.deliver_handoffs() == [JobStatus.SUCCEEDED]
    job = stack.store.job(stack.job_id)
    assert job.status is JobStatus.SUCCEEDED and stack.provider.gets == 1 and job.checks == 1
    assert (BUCKET, f"videos/cat.jpg.{stack.job_id[:12]}.mp4") in stack.storage.uploads
    assert answer.as_http()["statusCode"] == 200 and json.loads(answer.as_http()["body"])["outcome"] == "accepted"


def test_a_wrong_token_is_refused_without_reading_the_job(monkeypatch):
    stack = Stack()
    stack.count_reads(monkeypatch)
    wrong = stack.token[:-1] + ("A" if stack.token[-1] != "A" else "B")
    answer = stack.post(token=wrong)
    assert (answer.status_code, answer.outcome) == (403, CallbackOutcome.REFUSED)
    assert stack.reads == [] and stack.handoff.queued == [] and stack.provider.gets == 0


def test_another_jobs_token_is_refused(monkeypatch):
    stack = Stack()
    stack.count_reads(monkeypatch)
    other_job = "f" * 32
    other_token = callback_token(present(stack.runtime.signing_key).get(), other_job)
    assert stack.post(token=other_token).status_code == 403  # another job's token on this job
    assert stack.post(job_id=other_job).status_code == 403  # this job's token on another job
    assert stack.reads == [] and stack.handoff.queued == []


@pytest.mark.parametrize("job_id", ["not-a-job", "F" * 32, "a" * 31, "a" * 33, "a" * 16 + "," + "a" * 15])
def test_a_malformed_job_id_is_refused_before_the_signing_key_is_read(monkeypatch, job_id):
    stack = Stack()
    key = FakeSecretText()
    stack.runtime.signing_key = key
    stack.count_reads(monkeypatch)
    assert stack.post(job_id=job_id).status_code == 403
    assert key.reads == 0 and stack.reads == []


def test_a_missing_token_is_refused():
    stack = Stack()
    request = CallbackRequest(method="POST", job_id=stack.job_id, token=None, body="{}")
    assert answer_callback(request, stack.runtime).status_code == 403


def test_a_replay_after_the_job_is_terminal_does_nothing():
    stack = Stack()
    stack.runtime.clock.advance(50)
    stack.post()
    stack.deliver_handoffs()
    gets, published = stack.provider.gets, len(stack.runtime.events.published)
    answer = stack.post()
    assert (answer.status_code, answer.outcome) == (200, CallbackOutcome.IGNORED)
    assert stack.handoff.queued == [] and stack.provider.gets == gets
    assert len(stack.runtime.events.published) == published


@pytest.mark.parametrize("is_base64", [False, True])
def test_a_body_over_64_kib_is_refused_before_anything_else(monkeypatch, is_base64):
    stack = Stack()
    stack.count_reads(monkeypatch)
    raw = b"x" * (MAX_BODY_BYTES + 1)
    body = base64.b64encode(raw).decode() if is_base64 else raw.decode()
    answer = stack.post(body=body, is_base64=is_base64)
    assert (answer.status_code, answer.outcome) == (413, CallbackOutcome.REFUSED)
    assert stack.reads == [] and stack.handoff.queued == []


def test_a_body_of_exactly_64_kib_is_read():
    stack = Stack()
    stack.runtime.clock.advance(50)
    document = json.dumps({"id": stack.task_id, "status": "succeeded", "pad": ""})
    padded = document[:-2] + "x" * (MAX_BODY_BYTES - len(document)) + '"}'
    assert len(padded) == MAX_BODY_BYTES
    answer = stack.post(body=base64.b64encode(padded.encode()).decode(), is_base64=True)
    assert answer.outcome is CallbackOutcome.ACCEPTED


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_accepted(method):
    stack = Stack()
    answer = stack.post(method=method)
    assert (answer.status_code, answer.outcome) == (405, CallbackOutcome.REFUSED)


@pytest.mark.parametrize("status", ["queued", "running", "RUNNING"])
def test_a_claim_of_an_unfinished_task_is_ignored_without_reading_the_job(monkeypatch, status):
    stack = Stack()
    stack.count_reads(monkeypatch)
    answer = stack.post(status)
    assert (answer.status_code, answer.outcome) == (200, CallbackOutcome.IGNORED)
    assert stack.reads == [] and stack.handoff.queued == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"status": "weird-new-state"}', "{}"])
def test_a_body_it_cannot_read_may_mean_done_and_is_handed_off(body):
    stack = Stack()
    answer = stack.post(body=body)
    assert answer.outcome is CallbackOutcome.ACCEPTED and len(stack.handoff.queued) == 1


def test_a_callback_about_another_task_is_ignored():
    stack = Stack()
    answer = stack.post(body=json.dumps({"id": "cgt-someone-else", "status": "succeeded"}))
    assert answer.outcome is CallbackOutcome.IGNORED and stack.handoff.queued == []


def test_a_premature_success_claim_delivers_nothing_and_the_back_off_continues():
    stack = Stack()
    stack.runtime.clock.advance(10)  # the provider still runs the task (ready after 45 s)
    assert stack.post().outcome is CallbackOutcome.ACCEPTED  # a valid token: only the status call can tell
    assert stack.deliver_handoffs() == [JobStatus.RUNNING]
    job = stack.store.job(stack.job_id)
    now = stack.runtime.clock()
    assert job.status is JobStatus.RUNNING and job.outputs is None and stack.storage.uploads == {}
    assert job.lease_owner is None and stack.store.items[stack.job_id]["due_shard"] is not None
    assert MIN_INTERVAL <= present(job.next_check_at) - now <= MAX_INTERVAL
    # The poll net then finishes it.
    for _ in range(10):
        stack.runtime.clock.advance(30)
        run_poll(stack.runtime, owner="p", time_left=lambda: 300.0)
    assert stack.store.job(stack.job_id).status is JobStatus.SUCCEEDED


def test_duplicate_callbacks_deliver_once():
    stack = Stack()
    stack.runtime.clock.advance(50)
    answers = [stack.post() for _ in range(3)]
    assert all(a.status_code == 200 for a in answers)
    results = stack.deliver_handoffs()
    assert results.count(JobStatus.SUCCEEDED) == 1 and stack.provider.gets == 1
    assert [j.status for j in stack.runtime.events.published] == [JobStatus.SUCCEEDED]
    assert stack.post().outcome is CallbackOutcome.IGNORED


def test_a_handoff_finds_a_poller_already_on_the_job_and_leaves_it():
    stack = Stack()
    stack.runtime.clock.advance(50)
    stack.post()
    job = stack.store.job(stack.job_id)
    stack.store.acquire_lease(job, owner="poller", now=stack.runtime.clock(), lease_seconds=300)
    assert [r.value for r in stack.deliver_handoffs()] == ["leased"]
    assert stack.provider.gets == 0 and stack.store.job(stack.job_id).lease_owner == "poller"


def test_a_callback_that_never_comes_is_caught_by_the_later_first_check():
    stack = Stack(poll_window_seconds=0.5)  # a pass does not wait for a job due later
    job = stack.store.job(stack.job_id)
    first_check = present(job.next_check_at)
    stack.runtime.clock.advance(first_check - stack.runtime.clock() - 1)
    run_poll(stack.runtime, owner="p", time_left=lambda: 300.0)
    assert stack.provider.gets == 0  # not due yet: the callback was expected to bring the check forward
    stack.runtime.clock.advance(2)
    run_poll(stack.runtime, owner="p", time_left=lambda: 300.0)
    assert stack.store.job(stack.job_id).status is JobStatus.SUCCEEDED and stack.provider.gets == 1


def test_a_signing_key_outage_answers_503_without_reading_the_job(monkeypatch):
    stack = Stack()
    stack.runtime.signing_key = FakeSecretText(error=SecretUnavailable("down", secret_id="cb", cause="Throttling"))
    stack.count_reads(monkeypatch)
    answer = stack.post()
    assert (answer.status_code, answer.outcome) == (503, CallbackOutcome.FAILED) and stack.reads == []


def test_a_refused_handoff_asks_the_provider_to_call_again():
    stack = Stack()
    stack.runtime.handoff = FakeHandoff(error=HandoffFailed("throttled"))
    answer = stack.post()
    assert (answer.status_code, answer.outcome) == (503, CallbackOutcome.FAILED)
    assert stack.store.job(stack.job_id).status is JobStatus.SUBMITTED


def test_no_log_line_holds_the_token_or_the_query_string(caplog, capsys):
    stack = Stack()
    stack.runtime.clock.advance(50)
    with caplog.at_level(logging.DEBUG):
        stack.post(token=stack.token[::-1])
        stack.post(job_id="Z" * 32)
        stack.post("running")
        stack.post(method="GET")
        stack.post()
        stack.post()
        stack.deliver_handoffs()
        stack.post()
    logged = caplog.text + capsys.readouterr().out + "".join(str(r.__dict__) for r in caplog.records)
    assert "provider callback" in logged and stack.job_id in logged
    for secret in (stack.token, stack.token[::-1], "token=", "job=", "Z" * 32, "lambda-url"):
        assert secret not in logged


def test_the_function_url_event_and_the_handoff_parse_into_their_shapes():
    event = json.loads((EVENTS / "callback-url-request.json").read_text())
    parsed = parse_callback_event(event)
    assert isinstance(parsed, CallbackRequest) and parsed.method == "POST"
    assert parsed.job_id is not None and len(parsed.job_id) == 32 and parsed.token
    assert parsed.token not in repr(parsed) and json.loads(parsed.body)["status"] == "succeeded"
    assert parse_handoff_event(handoff_event("a" * 32)) == CallbackHandoff(job_id="a" * 32)
    assert parse_handoff_event(handoff_event("a" * 32, "cgt-1")) == CallbackHandoff(job_id="a" * 32, task_id="cgt-1")
    assert parse_handoff_event({"seedance_callback": {"job_id": "a" * 32, "task_id": "x" * 300}}).task_id is None
    # The intake reads only Function URL requests: one that imitates a hand-off is still a request.
    event["body"] = json.dumps(handoff_event("a" * 32))
    assert isinstance(parse_callback_event({**event, "seedance_callback": {"job_id": "a" * 32}}), CallbackRequest)


class LambdaContextStub:
    function_name = "stack-CallbackFunction-abc"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stack-CallbackFunction-abc"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 299_000


def test_the_intake_hands_a_request_to_the_worker_function_which_delivers(monkeypatch):
    import callback_worker_handler

    import callback_handler

    stack = Stack()
    stack.runtime.clock.advance(50)
    monkeypatch.setattr(callback_handler, "shared_runtime", lambda: stack.runtime)
    monkeypatch.setattr(callback_worker_handler, "shared_runtime", lambda: stack.runtime)
    event = json.loads((EVENTS / "callback-url-request.json").read_text())
    event["queryStringParameters"] = {"job": stack.job_id, "token": stack.token}
    event["body"] = json.dumps({"id": stack.task_id, "status": "succeeded"})
    answer = callback_handler.lambda_handler(event, LambdaContextStub())
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["outcome"] == "accepted"
    ((function_name, handoff),) = stack.handoff.queued
    assert function_name == FUNCTION  # the worker, never the public function itself
    assert callback_worker_handler.lambda_handler(handoff, LambdaContextStub()) == {"status": "SUCCEEDED"}
    assert present(stack.runtime.time_left)() == pytest.approx(299.0)
    assert stack.store.job(stack.job_id).status is JobStatus.SUCCEEDED and stack.provider.gets == 1
