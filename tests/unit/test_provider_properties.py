"""Generated provider answers, through a real socket: whatever the bytes, the client returns a domain value or
raises a domain error, and a 2xx to a submission is never read as "not accepted"."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedance_pipeline.adapters.provider_client import SeedanceClient
from seedance_pipeline.errors import PipelineError, ProviderThrottled, ProviderUnavailable
from seedance_pipeline.models import TaskResult
from tests.support.raw_http import Answer, RawHttpServer

BODY = {"model": "m", "prompt": "p", "images": ["https://x/i.png"]}
KEYS = ["task_id", "id", "data", "status", "output", "outputs", "content", "video_url", "url", "result_url",
        "last_frame_url", "fail_reason", "error", "message", "code", "usage", "progress"]  # fmt: skip
STATUSES = ["SUCCESS", "FAILURE", "IN_PROGRESS", "queued", "succeeded", "expired", "", " ", "NOT_START"]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.sampled_from(STATUSES)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)


def encoded(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


raw_bodies = st.one_of(
    json_values.map(encoded),
    json_values.map(encoded).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),  # cut JSON
    st.binary(max_size=200),  # incl. non-UTF-8
    st.just(b"[" * 5000 + b"]" * 5000),  # nested deeper than the parser's recursion limit
)


@st.composite
def answers(draw: st.DrawFn, statuses: st.SearchStrategy[int]) -> Answer:
    body = draw(raw_bodies)
    headers = {"Content-Type": "application/json"}
    if draw(st.booleans()):
        headers["Content-Encoding"] = "gzip"
        body = draw(st.sampled_from([body, gzip.compress(body), gzip.compress(body)[: max(1, len(body) // 2)]]))
    if draw(st.booleans()):
        headers["Retry-After"] = draw(st.sampled_from(["0", "1.5", "nan", "inf", "-3", "soon", "99999"]))
    cut = draw(st.none() | st.integers(0, max(0, len(body) - 1)))
    return Answer(draw(statuses), body, headers, cut_after=cut)


@pytest.fixture(scope="module")
def server() -> Iterator[RawHttpServer]:
    server = RawHttpServer()
    yield server
    server.close()


def client(server: RawHttpServer) -> SeedanceClient:
    return SeedanceClient(server.base_url, "sk-test", retries=1, read_timeout=5, sleep=lambda _s: None)


def outcome(call: Callable[[], object]) -> object:
    """What the call returned, or the domain error it raised; any other exception fails the property."""
    try:
        return call()
    except PipelineError as exc:
        return exc


SLOW_EXAMPLES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SLOW_EXAMPLES
@given(answer=answers(st.integers(200, 299)))
def test_a_2xx_to_a_submission_gives_a_task_id_or_uncertain_never_not_accepted(server, answer):
    server.answer(answer, answer)
    result = outcome(lambda: client(server).submit(BODY))
    assert not isinstance(result, ProviderUnavailable | ProviderThrottled), result.message
    if not isinstance(result, PipelineError):
        assert isinstance(result, str) and result.strip() and len(result) <= 256
    assert len(server.requests) == 1  # a 2xx is never followed by a second POST


@SLOW_EXAMPLES
@given(answer=answers(st.integers(200, 599)))
def test_any_answer_to_a_submission_is_a_task_id_or_a_domain_error(server, answer):
    server.answer(answer, answer)
    result = outcome(lambda: client(server).submit(BODY))
    assert isinstance(result, str | PipelineError)


@SLOW_EXAMPLES
@given(answer=answers(st.integers(200, 599)))
def test_any_answer_to_a_status_check_is_a_task_result_or_a_domain_error(server, answer):
    server.answer(answer, answer)
    result = outcome(lambda: client(server).get("cgt-1"))
    assert isinstance(result, TaskResult | PipelineError)
