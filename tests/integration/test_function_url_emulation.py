"""The local Function URL: real HTTP requests become Lambda's payload format 2.0 events, answers map back as Lambda's."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError

import pytest

from seedance_local.function_url import MAX_PAYLOAD_BYTES, FunctionUrlServer


class Recorder:
    """A dummy handler: keeps each event and context and answers whatever the test sets."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer: Any = {"statusCode": 200, "body": "ok"}
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.events.append(event)
            self.contexts.append(context)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def server() -> Iterator[FunctionUrlServer]:
    with FunctionUrlServer(function_name="CallbackFunction", timeout_seconds=42) as running:
        yield running


@pytest.fixture
def handler(server: FunctionUrlServer) -> Recorder:
    recorder = Recorder()
    server.route_to(recorder)
    return recorder


def send(
    server: FunctionUrlServer,
    method: str,
    target: str,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with exactly the given headers (repeats included), over a fresh connection."""
    host_port = server.base_url.split("//", 1)[1].rstrip("/")
    connection = http.client.HTTPConnection(host_port, timeout=10)
    try:
        connection.putrequest(method, target)
        for name, value in headers:
            connection.putheader(name, value)
        if body or method in ("POST", "PUT"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_base_url_is_loopback_http_with_the_trailing_slash_aws_gives() -> None:
    server = FunctionUrlServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/")
        assert server.base_url.count("/") == 3


def test_requests_before_a_handler_is_routed_are_answered_503(server: FunctionUrlServer) -> None:
    status, _, _ = send(server, "POST", "/?job=x", b"{}", [("Content-Type", "application/json")])
    assert status == 503
    assert server.requests[-1].status == 503


def test_a_post_becomes_the_payload_format_2_event_lambda_builds(server: FunctionUrlServer, handler: Recorder) -> None:
    status, _, body = send(
        server,
        "POST",
        "/?job=abc&token=t%2Bk&job=def",
        b'{"id": "task-1"}',
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "seedance-sim/1"),
            ("X-Custom", "one"),
            ("x-custom", "two"),
            ("Cookie", "a=1; b=2"),
        ],
    )
    assert (status, body) == (200, b"ok")
    (event,) = handler.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/"
    assert event["rawQueryString"] == "job=abc&token=t%2Bk&job=def"
    assert event["queryStringParameters"] == {"job": "abc,def", "token": "t+k"}
    assert event["cookies"] == ["a=1", "b=2"]
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom"] == "one,two"
    assert headers["content-type"] == "application/json"
    assert "cookie" not in headers
    assert event["body"] == '{"id": "task-1"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["accountId"] == "anonymous"
    assert context["apiId"] == context["domainPrefix"] == server.url_id
    assert context["domainName"] == f"{server.url_id}.lambda-url.us-east-1.on.aws"
    assert context["http"] == {
        "method": "POST",
        "path": "/",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "seedance-sim/1",
    }
    assert (context["routeKey"], context["stage"]) == ("$default", "$default")
    assert context["requestId"] and context["requestId"] == server.requests[-1].request_id
    assert isinstance(context["timeEpoch"], int)
    assert context["time"].endswith(" +0000") and context["time"].count("/") == 2


def test_a_request_without_query_or_cookies_leaves_those_keys_out(server: FunctionUrlServer, handler: Recorder) -> None:
    send(server, "GET", "/some/path")
    (event,) = handler.events
    assert event["rawPath"] == "/some/path"
    assert event["requestContext"]["http"]["path"] == "/some/path"
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    assert "body" not in event
    assert event["requestContext"]["http"]["method"] == "GET"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain; charset=utf-8", "application/xml", "application/x-www-form-urlencoded", "application/problem+json"],
)
def test_text_bodies_arrive_as_text(server: FunctionUrlServer, handler: Recorder, content_type: str) -> None:
    send(server, "POST", "/", b"a=1&b=2", [("Content-Type", content_type)])
    assert handler.events[0]["body"] == "a=1&b=2"
    assert handler.events[0]["isBase64Encoded"] is False


@pytest.mark.parametrize("headers", [[("Content-Type", "application/octet-stream")], []])
def test_binary_or_untyped_bodies_arrive_base64_encoded(
    server: FunctionUrlServer, handler: Recorder, headers: list[tuple[str, str]]
) -> None:
    raw = bytes(range(256))
    send(server, "POST", "/", raw, headers)
    event = handler.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_each_request_gets_a_fresh_lambda_context(server: FunctionUrlServer, handler: Recorder) -> None:
    send(server, "POST", "/", b"{}", [("Content-Type", "application/json")])
    send(server, "POST", "/", b"{}", [("Content-Type", "application/json")])
    first, second = handler.contexts
    assert first.aws_request_id != second.aws_request_id
    assert first.invoked_function_arn.endswith(":function:CallbackFunction")
    assert 0 < first.get_remaining_time_in_millis() <= 42_000


def test_a_full_response_maps_status_headers_cookies_and_base64_body(
    server: FunctionUrlServer, handler: Recorder
) -> None:
    handler.answer = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "X-Mine": "yes"},
        "cookies": ["c1=v1; Max-Age=60", "c2=v2"],
        "body": base64.b64encode(b"\x89PNG\x00").decode(),
        "isBase64Encoded": True,
    }
    status, headers, body = send(server, "GET", "/")
    assert status == 201
    assert body == b"\x89PNG\x00"
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Mine"] == "yes"
    assert headers.get_all("Set-Cookie") == ["c1=v1; Max-Age=60", "c2=v2"]
    assert headers["x-amzn-RequestId"] == server.requests[-1].request_id


@pytest.mark.parametrize(
    ("answer", "body"),
    [({"accepted": True}, b'{"accepted": true}'), ("Hello, world!", b'"Hello, world!"'), ([1, 2], b"[1, 2]")],
)
def test_json_without_a_status_code_is_a_200_json_body(
    server: FunctionUrlServer, handler: Recorder, answer: Any, body: bytes
) -> None:
    handler.answer = answer
    status, headers, got = send(server, "GET", "/")
    assert (status, got) == (200, body)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "answer",
    [RuntimeError("boom"), {"statusCode": "two hundred"}, {"statusCode": 200, "body": "!!", "isBase64Encoded": True}],
)
def test_a_failing_or_malformed_handler_is_a_502(server: FunctionUrlServer, handler: Recorder, answer: Any) -> None:
    handler.answer = answer
    status, _, body = send(server, "POST", "/", b"{}", [("Content-Type", "application/json")])
    assert status == 502
    assert b"boom" not in body
    assert server.requests[-1].error


def test_a_request_over_six_megabytes_is_refused_413_without_reaching_the_handler(
    server: FunctionUrlServer, handler: Recorder
) -> None:
    status, headers, body = send(
        server, "POST", "/", b"x" * (MAX_PAYLOAD_BYTES + 1), [("Content-Type", "application/json")]
    )
    assert status == 413
    assert headers["x-amzn-ErrorType"] == "RequestTooLargeException"
    assert b"6291456" in body
    # Under the raw limit but over it once base64-encoded into the event: Lambda refuses that too.
    status, _, _ = send(server, "POST", "/", b"\x00" * (5 * 1024 * 1024), [("Content-Type", "application/zip")])
    assert status == 413
    assert handler.events == []
    assert [r.status for r in server.requests] == [413, 413]


def test_the_request_record_never_holds_the_query_string(server: FunctionUrlServer, handler: Recorder) -> None:
    send(server, "POST", "/?job=abc&token=secret-token", b"{}", [("Content-Type", "application/json")])
    (record,) = server.requests
    assert record.path == "/"
    assert "secret-token" not in repr(record)


def test_concurrent_requests_are_served_in_parallel_through_urllib(
    server: FunctionUrlServer, handler: Recorder
) -> None:
    gate = threading.Barrier(3, timeout=10)

    def slow(event: dict[str, Any], context: Any) -> Any:
        gate.wait()  # three requests must be inside the handler at once for any of them to finish
        return {"statusCode": 200, "body": event["queryStringParameters"]["n"]}

    server.route_to(slow)
    answers: list[str] = []

    def call(n: int) -> None:
        request = urllib.request.Request(f"{server.base_url}?n={n}", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(response.read().decode())

    threads = [threading.Thread(target=call, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == ["0", "1", "2"]


def test_unroute_sends_later_requests_back_to_503(server: FunctionUrlServer, handler: Recorder) -> None:
    server.unroute()
    request = urllib.request.Request(server.base_url, data=b"{}", method="POST")
    with pytest.raises(HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 503
    assert json.loads(info.value.read())["Message"]
    assert handler.events == []
