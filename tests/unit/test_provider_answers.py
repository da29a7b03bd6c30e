"""What each provider answer means, through real sockets: a submission is refused only when it clearly was, a
status check ends a task only on a definitive "unknown task", and no call outlives its deadline."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import pytest

from seedance_pipeline.adapters.provider_client import SeedanceClient
from seedance_pipeline.errors import (
    ProviderAuthError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
    SubmissionUncertain,
)
from tests.support.raw_http import Answer, RawHttpServer, json_answer

BODY = {"model": "m", "prompt": "p", "images": ["https://x/i.png"]}
RPM = '{"error": {"code": "ModelAccountRpmRateLimitExceeded", "message": "slow down"}}'


@pytest.fixture(scope="module")
def server() -> Iterator[RawHttpServer]:
    server = RawHttpServer()
    yield server
    server.close()


def client(server: RawHttpServer, **options: float) -> SeedanceClient:
    return SeedanceClient(server.base_url, "sk-test", **{"retries": 0, **options})  # type: ignore[arg-type]


# -- Hole 2: an answer we could not read, after the body left, never sends the task again ----------------------


@pytest.mark.parametrize(
    "answer",
    [
        json_answer(200, "null"),
        json_answer(200, "[]"),
        json_answer(200, '["cgt-1"]'),
        json_answer(200, '"cgt-1"'),
        json_answer(200, "12345"),
        json_answer(200, '{"task_id": "cgt-1"'),
        Answer(200, b"\xff\xfe\x00{not utf-8"),
        Answer(200, b""),
        Answer(200, b'{"task_id": "cgt-1"}', cut_after=9),
        Answer(200, b"this is not gzip", {"Content-Encoding": "gzip"}),
        Answer(200, gzip.compress(b'{"task_id": "cgt-1"}')[:12], {"Content-Encoding": "gzip"}),
        Answer(201, b"<html>created</html>"),
    ],
    ids=[
        "null",
        "empty-list",
        "list",
        "string",
        "number",
        "cut-json",
        "not-utf8",
        "empty",
        "cut-body",
        "bad-gzip",
        "cut-gzip",
        "html",
    ],
)
def test_an_unreadable_2xx_to_a_submission_is_uncertain(server, answer):
    server.answer(answer)
    with pytest.raises(SubmissionUncertain):
        client(server).submit(BODY)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_server_or_gateway_error_after_sending_is_uncertain_and_sent_once(server, status):
    server.answer(json_answer(status, '{"error": {"code": "Oops", "message": "upstream"}}'))
    with pytest.raises(SubmissionUncertain) as caught:
        client(server, retries=3, backoff_factor=0.01).submit(BODY)
    assert f"HTTP {status}" in caught.value.message
    assert [method for method, _ in server.requests] == ["POST"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 503])
def test_a_refusal_status_without_a_readable_error_body_is_uncertain(server, status):
    server.answer(Answer(status, b"<html><body>Blocked by a proxy</body></html>"))
    with pytest.raises(SubmissionUncertain):
        client(server).submit(BODY)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderRejected),
        (404, ProviderRejected),
        (409, ProviderRejected),
        (422, ProviderRejected),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (429, ProviderThrottled),
        (503, ProviderUnavailable),
    ],
)
def test_a_clear_refusal_is_reported_as_not_accepted(server, status, error):
    server.answer(json_answer(status, '{"code": "SomeCode", "message": "no"}'))
    with pytest.raises(error):
        client(server).submit(BODY)


@pytest.mark.parametrize(
    ("text", "task_id"),
    [
        ('{"task_id": "cgt-20250831141439-sqmgf"}', "cgt-20250831141439-sqmgf"),
        ('{"data": {"task_id": "cgt-2"}}', "cgt-2"),
        ('{"id": "cgt-native"}', "cgt-native"),
        ('{"task_id": null, "id": "cgt-native"}', "cgt-native"),
        ('{"task_id": 12345}', "12345"),
        ('{"id": 7}', "7"),
        ('{"task_id": "' + "x" * 256 + '"}', "x" * 256),
    ],
    ids=["gateway", "wrapped", "native-id", "null-then-id", "numeric", "numeric-id", "256-chars"],
)
def test_the_task_id_is_read_in_either_dialect(server, text, task_id):
    server.answer(json_answer(200, text))
    assert client(server).submit(BODY) == task_id


@pytest.mark.parametrize(
    "text",
    [
        '{"task_id": "   "}',
        '{"task_id": "' + "x" * 257 + '"}',
        '{"task_id": "cgt\\n1"}',
        '{"task_id": true}',
        '{"task_id": 1.5}',
        '{"task_id": {"id": "cgt-1"}}',
        '{"code": 0, "message": "ok"}',
    ],
    ids=["blank", "257-chars", "control-char", "bool", "float", "object", "no-id"],
)
def test_a_2xx_without_a_usable_task_id_is_uncertain(server, text):
    server.answer(json_answer(200, text))
    with pytest.raises(SubmissionUncertain):
        client(server).submit(BODY)


def test_a_connection_closed_after_sending_is_uncertain(server):
    server.answer(Answer(hang_up=True))
    with pytest.raises(SubmissionUncertain):
        client(server).submit(BODY)


def test_a_refused_connection_is_safe_to_send_later():
    closed = RawHttpServer()
    base_url = closed.base_url
    closed.close()
    with pytest.raises(ProviderUnavailable):
        SeedanceClient(base_url, "sk-test", retries=0).submit(BODY)


# -- Hole 17: a transient answer to a status check never ends a paid task --------------------------------------


@pytest.mark.parametrize("status", [408, 409, 425, 500, 502, 503, 504])
def test_a_transient_status_check_answer_means_ask_again_later(server, status):
    server.answer(json_answer(status, '{"error": {"code": "Busy", "message": "try later"}}'))
    with pytest.raises(ProviderUnavailable):
        client(server).get("cgt-1")


def test_a_throttled_status_check_means_ask_again_later(server):
    server.answer(json_answer(429, RPM, **{"Retry-After": "7"}))
    with pytest.raises(ProviderThrottled) as caught:
        client(server).get("cgt-1")
    assert caught.value.retry_after == 7


@pytest.mark.parametrize(
    "answer",
    [
        json_answer(404, '{"error": {"code": "NotFound", "message": "no such task"}}'),
        json_answer(400, '{"error": {"code": "task_not_exist", "message": "task_not_exist"}}'),
        json_answer(400, '{"code": "TaskNotExist", "message": "gone"}'),
    ],
    ids=["404", "400-task_not_exist", "400-flat"],
)
def test_only_an_unknown_task_answer_ends_the_task(server, answer):
    server.answer(answer)
    with pytest.raises(ProviderRejected):
        client(server).get("cgt-1")


def test_a_400_that_does_not_say_the_task_is_unknown_is_asked_again_later(server):
    server.answer(json_answer(400, '{"error": {"code": "InvalidParameter", "message": "?"}}'))
    with pytest.raises(ProviderUnavailable):
        client(server).get("cgt-1")


def test_a_task_id_is_quoted_into_the_status_path(server):
    server.answer(json_answer(200, '{"status": "RUNNING"}'))
    assert client(server).get("a/b?c").raw_status == "RUNNING"
    assert server.requests == [("GET", "/v2/videos/generations/a%2Fb%3Fc")]


# -- Hole 6: retries, Retry-After waits and read timeouts are budgeted against the deadline -------------------


class FakeMonotonic:
    """A monotonic clock that only sleeping moves, so a budget can be checked to the second."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budgeted(server: RawHttpServer, clock: FakeMonotonic, **options: Any) -> SeedanceClient:
    return SeedanceClient(
        server.base_url, "sk-test", retries=3, max_retry_after=20, sleep=clock.sleep, monotonic=clock, **options
    )


def test_a_retry_after_wait_that_would_end_past_the_deadline_is_not_slept(server):
    clock = FakeMonotonic()
    server.answer(*[json_answer(429, RPM, **{"Retry-After": "20"})] * 4)
    with pytest.raises(ProviderThrottled) as caught:
        budgeted(server, clock).submit(BODY, deadline=clock() + 30)
    assert clock.sleeps == [20]
    assert len(server.requests) == 2
    assert caught.value.retry_after == 20  # the job waits that long, back in WAITING


def test_without_a_deadline_the_retry_count_alone_bounds_the_waits(server):
    clock = FakeMonotonic()
    server.answer(*[json_answer(429, RPM, **{"Retry-After": "20"})] * 4)
    with pytest.raises(ProviderThrottled):
        budgeted(server, clock).submit(BODY)
    assert clock.sleeps == [20, 20, 20]


def test_a_status_check_never_sleeps_past_its_deadline(server):
    clock = FakeMonotonic()
    busy = json_answer(503, '{"code": "ServiceUnavailable", "message": "busy"}', **{"Retry-After": "4"})
    server.answer(*[busy] * 4)
    deadline = clock() + 10
    with pytest.raises(ProviderUnavailable):
        budgeted(server, clock).get("cgt-1", deadline=deadline)
    assert clock.sleeps == [4, 4]
    assert clock() <= deadline


def test_a_submission_with_no_time_left_is_not_sent(server):
    server.answer(json_answer(200, '{"task_id": "cgt-1"}'))
    clock = FakeMonotonic()
    with pytest.raises(ProviderUnavailable):
        budgeted(server, clock).submit(BODY, deadline=clock() + 4)  # a POST cut short would end uncertain
    assert server.requests == []


def test_the_read_timeout_is_cut_to_the_time_left(server):
    # The answer comes 3 s after the POST: under the 30 s read timeout, past the 1.5 s left. Only a read timeout cut
    # to the time left gives up before it (an uncut one returns "cgt-late").
    server.answer(Answer(200, b'{"task_id": "cgt-late"}', delay=3.0))
    patient = SeedanceClient(server.base_url, "sk-test", read_timeout=30, min_submit_seconds=1)
    with pytest.raises(SubmissionUncertain):  # the body left: a late answer may hide a task
        patient.submit(BODY, deadline=time.monotonic() + 1.5)
    assert server.requests == [("POST", "/v2/videos/generations")]


def test_a_slow_status_check_gives_up_at_its_deadline(server):
    # Each answer comes 3 s after its GET, the deadline 1.5 s after the call: the first read, cut to the time left,
    # gives up before its answer, and no second GET starts past the deadline.
    server.answer(*[Answer(200, b'{"status": "RUNNING"}', delay=3.0)] * 4)
    with pytest.raises(ProviderUnavailable):
        SeedanceClient(server.base_url, "sk-test", read_timeout=30).get("cgt-1", deadline=time.monotonic() + 1.5)
    assert server.requests == [("GET", "/v2/videos/generations/cgt-1")]


def test_an_unreadable_error_page_is_not_copied_into_the_job_message(server):
    server.answer(Answer(502, b"<html>upstream failed for: Authorization: Bearer sk-test</html>"))
    with pytest.raises(SubmissionUncertain) as caught:
        client(server).submit(BODY)
    assert "sk-test" not in caught.value.message and "unreadable body" in caught.value.message
