"""Every test knob: latency, injected faults, response and error shapes, result URLs and custom bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from seedance_simulator import RESPONSE_SHAPES, Knobs, SimulatorServer, TaskRecord
from tests.support.simulator_client import Client


def test_latency_delays_every_api_answer(client: Client, server: SimulatorServer) -> None:
    server.knobs.latency_seconds = 0.3
    started = time.monotonic()
    task_id = client.submit()
    client.query_raw(task_id)
    client.query_raw("cgt-20250101000000-nopee")
    assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("retry_after", [None, 2, 0.5])
def test_rate_limit_next_answers_429_then_recovers(
    client: Client, server: SimulatorServer, retry_after: float | None
) -> None:
    server.knobs.rate_limit_next = 2
    server.knobs.retry_after = retry_after
    for _ in range(2):
        response = client.submit_raw()
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "ModelAccountRpmRateLimitExceeded"
        if retry_after is None:
            assert "Retry-After" not in response.headers
        else:
            assert float(response.headers["Retry-After"]) == retry_after
    assert client.submit_raw().status_code == 200
    assert server.counters.rate_limited == 2
    assert server.counters.tasks_created == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_next_answers_5xx_then_recovers(client: Client, server: SimulatorServer, status: int) -> None:
    server.knobs.server_errors_next = 1
    server.knobs.server_error_status = status
    response = client.submit_raw()
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "type"}
    assert client.submit_raw().status_code == 200


def test_drop_connections_next_closes_the_socket_without_an_answer(client: Client, server: SimulatorServer) -> None:
    server.knobs.drop_connections_next = 1
    with pytest.raises(requests.ConnectionError):
        client.submit_raw()
    assert server.counters.tasks_created == 0
    assert server.counters.dropped == 1
    assert client.submit_raw().status_code == 200


def test_malformed_json_next_answers_200_with_a_body_that_does_not_parse(
    client: Client, server: SimulatorServer
) -> None:
    task_id = client.submit()
    server.knobs.malformed_json_next = 1
    response = client.query_raw(task_id)
    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert client.query_raw(task_id).json()["task_id"] == task_id


def test_fault_methods_targets_only_queries(client: Client, server: SimulatorServer) -> None:
    server.knobs.fault_methods = "GET"
    server.knobs.server_errors_next = 1
    task_id = client.submit()  # POST is not targeted and does not consume the fault
    assert server.knobs.server_errors_next == 1
    assert client.query_raw(task_id).status_code == 500
    assert client.query_raw(task_id).status_code == 200


def test_fault_methods_targets_only_submits(client: Client, server: SimulatorServer) -> None:
    server.knobs.fault_methods = "POST"
    server.knobs.rate_limit_next = 1
    assert client.query_raw("cgt-20250101000000-nopee").status_code == 400
    assert client.submit_raw().status_code == 429
    assert client.submit_raw().status_code == 200


def _video_url(shape: str, answer: dict[str, Any]) -> Any:
    """Where each gateway variant puts the URL (docs/provider-api.md, "Where result URLs are found")."""
    data = answer.get("data") or {}
    return {
        "documented": lambda: data["output"],
        "outputs_list": lambda: data["outputs"][0],
        "result_url": lambda: answer["result_url"],
        "content_video_url": lambda: data["content"]["video_url"],
        "nested_data": lambda: data["data"]["content"]["video_url"],
        "top_video_url": lambda: answer["video_url"],
        "top_url": lambda: answer["url"],
        "lowercase_status": lambda: data["output"],
        "fail_reason_url": lambda: answer["fail_reason"],
    }[shape]()


@pytest.mark.parametrize("shape", [s for s in RESPONSE_SHAPES if s not in ("missing_url", "non_string_url")])
def test_each_response_shape_puts_a_working_url_where_that_gateway_does(
    client: Client, server: SimulatorServer, shape: str
) -> None:
    server.knobs.response_shape = shape
    answer = client.wait(client.submit())
    assert answer["status"] == ("succeeded" if shape == "lowercase_status" else "SUCCESS")
    url = _video_url(shape, answer)
    other_places = [s for s in ("result_url", "video_url", "url") if s in answer]
    assert len(other_places) <= 1
    if shape not in ("documented", "lowercase_status", "fail_reason_url"):
        assert "output" not in answer["data"]
    response = client.session.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content[4:8] == b"ftyp"


def test_lowercase_status_uses_upstream_values_throughout(client: Client, server: SimulatorServer) -> None:
    server.knobs.response_shape = "lowercase_status"
    server.knobs.max_running = 1
    server.knobs.never_finish = True
    first, second = client.submit(), client.submit()
    assert client.query(first)["status"] == "running"
    assert client.query(second)["status"] == "queued"
    server.knobs.never_finish = False
    server.knobs.failure_reason = "blocked"
    assert client.wait(client.submit())["status"] == "failed"


def test_missing_url_shape_reports_success_with_no_url_anywhere(client: Client, server: SimulatorServer) -> None:
    server.knobs.response_shape = "missing_url"
    answer = client.wait(client.submit(return_last_frame=True))
    assert answer["status"] == "SUCCESS"
    assert "http" not in str(answer)


def test_non_string_url_shape_puts_a_number_in_data_output(client: Client, server: SimulatorServer) -> None:
    server.knobs.response_shape = "non_string_url"
    answer = client.wait(client.submit())
    assert answer["status"] == "SUCCESS"
    assert isinstance(answer["data"]["output"], int)
    assert "http" not in str(answer)


@pytest.mark.parametrize("shape", ["documented", "content_video_url", "top_url", "nested_data"])
def test_last_frame_url_is_where_the_documented_clients_look(
    client: Client, server: SimulatorServer, shape: str
) -> None:
    server.knobs.response_shape = shape
    answer = client.wait(client.submit(return_last_frame=True))
    url = answer["data"]["content"]["last_frame_url"]
    assert answer["data"]["last_frame_url"] == url
    if shape == "top_url":
        assert answer["last_frame_url"] == url
    response = client.session.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"


def test_no_last_frame_url_unless_asked_for(client: Client) -> None:
    answer = client.wait(client.submit())
    assert "last-frame" not in str(answer)


def test_expired_results_answer_403(client: Client, server: SimulatorServer) -> None:
    answer = client.wait(client.submit())
    server.knobs.expire_results = True
    response = client.session.get(answer["data"]["output"], timeout=10)
    assert response.status_code == 403
    assert b"AccessDenied" in response.content


def test_result_status_override_answers_that_status(client: Client, server: SimulatorServer) -> None:
    answer = client.wait(client.submit())
    server.knobs.result_status_override = 404
    assert client.session.get(answer["data"]["output"], timeout=10).status_code == 404
    server.knobs.result_status_override = None
    assert client.session.get(answer["data"]["output"], timeout=10).status_code == 200


def test_video_body_factory_streams_a_large_body_chunk_by_chunk(client: Client, server: SimulatorServer) -> None:
    size = 256 * 1024 * 1024
    chunk = bytes(range(256)) * 4096  # 1 MiB, reused: the body is generated lazily, never held whole
    seen: list[TaskRecord] = []

    def factory(task: TaskRecord) -> tuple[int, Iterator[bytes]]:
        seen.append(task)
        return size, (chunk for _ in range(size // len(chunk)))

    server.knobs.video_body_factory = factory
    answer = client.wait(client.submit())
    with client.session.get(answer["data"]["output"], stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == size
        received = 0
        largest = 0
        for piece in response.iter_content(1024 * 1024):
            received += len(piece)
            largest = max(largest, len(piece))
    assert received == size
    assert seen[0].task_id == answer["task_id"]


def test_video_body_factory_skips_the_render(client: Client, server: SimulatorServer) -> None:
    server.knobs.video_body_factory = lambda task: (5, iter([b"hello"]))
    task_id = client.submit(resolution="1080p", duration=10)  # would be a slow render
    answer = client.wait(task_id, timeout=5)
    assert client.session.get(answer["data"]["output"], timeout=10).content == b"hello"
    assert server.task(task_id).result is None


@pytest.mark.parametrize("status", ["UNKNOWN", "SUBMITTED", "cancelled", "expired"])
def test_status_override_reports_any_status_verbatim(client: Client, server: SimulatorServer, status: str) -> None:
    task_id = client.submit()
    server.knobs.status_override = status
    answer = client.query(task_id)
    assert answer["status"] == status
    assert answer["data"] == {}


def test_assigning_new_knobs_applies_them_to_the_running_server(client: Client, server: SimulatorServer) -> None:
    server.knobs = Knobs(api_key="test-key", rate_limit_next=1)
    assert client.submit_raw().status_code == 429
    assert client.submit_raw().status_code == 200


def test_video_body_factory_failing_mid_body_cuts_the_download_short(client: Client, server: SimulatorServer) -> None:
    def factory(task: TaskRecord) -> tuple[int, Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield b"x" * 1024
            raise RuntimeError("storage went away")

        return 1024 * 1024, chunks()

    server.knobs.video_body_factory = factory
    answer = client.wait(client.submit())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.session.get(answer["data"]["output"], timeout=10).content  # noqa: B018


def test_result_urls_answer_head_with_the_length(client: Client) -> None:
    answer = client.wait(client.submit())
    head = client.session.head(answer["data"]["output"], timeout=10)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(client.session.get(answer["data"]["output"], timeout=10).content)
