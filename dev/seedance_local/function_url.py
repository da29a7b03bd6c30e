"""A Lambda Function URL on loopback: real HTTP in, the payload format 2.0 event Lambda builds, its answer back out.

The server exists before any handler does (the stack resolves ``!GetAtt <Fn>Url.FunctionUrl`` to its base URL
while the functions' environment is still being built) and is routed to a handler later with :meth:`route_to`.
Until then every request gets a 503, which a provider treats as "try again later", as it would a cold region.

What Lambda does and this does too: header names lower-cased and repeated headers comma-joined, the Cookie header
moved into ``cookies``, repeated query keys comma-joined in ``queryStringParameters``, a binary body base64-encoded,
requests whose event would exceed 6 MB refused with 413, a handler's exception or malformed answer turned into 502,
and a JSON answer without ``statusCode`` sent as a 200 ``application/json`` body. What differs: plain HTTP, and
``requestContext.domainName`` names the ``<url-id>.lambda-url.<region>.on.aws`` host the deployed URL would have.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from seedance_local.harness import LambdaContext
from seedance_local.loopback_http_server import LoopbackHttpServer, QuietRequestHandler

# Lambda's limit on a synchronous invocation's request and response payloads.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

# Bodies of these types reach the function as text; every other body (and one with no type) arrives base64-encoded.
_TEXT_TYPES = frozenset(
    {"application/json", "application/javascript", "application/xml", "application/x-www-form-urlencoded"}
)

Handler = Callable[[dict[str, Any], Any], Any]
ContextFactory = Callable[[], Any]


def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def lambda_time(epoch_seconds: float) -> str:
    """requestContext.time: the access-log format Lambda uses, always in UTC."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_seconds))


def build_event(
    *,
    method: str,
    target: str,
    protocol: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    url_id: str,
    region: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event Lambda builds for one Function URL request (``target``: path and query)."""
    now = time.time() if now is None else now
    raw_path, _, raw_query = target.partition("?")
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    domain = f"{url_id}.lambda-url.{region}.on.aws"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path or "/",
        "rawQueryString": raw_query,
        "headers": joined,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": "anonymous",  # what Lambda puts here for AuthType NONE
        "apiId": url_id,
        "domainName": domain,
        "domainPrefix": url_id,
        "http": {
            "method": method,
            "path": raw_path or "/",
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": lambda_time(now),
        "timeEpoch": int(now * 1000),
    }
    if body:
        if is_text_content_type(joined.get("content-type")):
            event["body"] = body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


class BadFunctionResponse(ValueError):
    """The function answered something Lambda cannot turn into an HTTP response (Lambda answers 502)."""


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the HTTP response Lambda makes from a function's return value."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Valid JSON without statusCode: the JSON text itself is the body (a string keeps its quotes).
        return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadFunctionResponse(f"statusCode {status!r}")
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        payload = json.dumps(body).encode()
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadFunctionResponse("body is not valid base64") from exc
    else:
        payload = body.encode()
    return status, headers, payload


@dataclass(frozen=True)
class UrlRequest:
    """One request the server answered. The query string is left out: it carries per-job tokens."""

    method: str
    path: str
    status: int
    request_id: str | None
    error: str | None = None


class FunctionUrlServer(LoopbackHttpServer):
    """A loopback HTTP server standing in for one function's Function URL. Start it, then :meth:`route_to`."""

    def __init__(
        self,
        *,
        function_name: str = "CallbackFunction",
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_seconds: float = 300.0,
    ) -> None:
        super().__init__(
            host=host, port=port, thread_name=f"function-url-{function_name}", description="the Function URL server"
        )
        self.function_name = function_name
        self.region = region
        self.timeout_seconds = timeout_seconds
        # Lambda's url-ids are 32 lower-case alphanumerics.
        self.url_id = secrets.token_hex(16)
        self._handler: Handler | None = None
        self._context_factory: ContextFactory | None = None
        self._lock = threading.Lock()
        self._requests: list[UrlRequest] = []

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_request_handler(self)

    @property
    def base_url(self) -> str:
        """What ``!GetAtt <Fn>Url.FunctionUrl`` gives: scheme, host and a trailing slash."""
        return f"{self.origin}/"

    # -- routing -----------------------------------------------------------------------------------------------------

    def route_to(self, handler: Handler, *, context_factory: ContextFactory | None = None) -> None:
        """Send every later request to ``handler(event, context)``; a new context per request, as Lambda gives."""
        with self._lock:
            self._handler = handler
            self._context_factory = context_factory

    def unroute(self) -> None:
        with self._lock:
            self._handler = None
            self._context_factory = None

    @property
    def routed(self) -> bool:
        return self._handler is not None

    @property
    def requests(self) -> list[UrlRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- request handling (called from the server's threads) ---------------------------------------------------------

    def _record(self, entry: UrlRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    def _context(self) -> Any:
        if self._context_factory is not None:
            return self._context_factory()
        return LambdaContext(self.function_name, self.timeout_seconds)

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes, str | None]:
        """Run the routed handler on ``event`` and map its answer as Lambda does (status, headers, body, error)."""
        with self._lock:
            handler = self._handler
        if handler is None:
            return 503, [("Content-Type", "application/json")], b'{"Message":"Service Unavailable"}', "unrouted"
        try:
            result = handler(event, self._context())
            status, headers, body = http_response(result)
            # Lambda checks the function's answer against the payload limit too.
            if len(json.dumps(result)) > MAX_PAYLOAD_BYTES:
                raise BadFunctionResponse("response payload over 6 MB")
        except Exception as exc:
            return (
                502,
                [("Content-Type", "application/json")],
                b'{"Message":"Internal Server Error"}',
                (type(exc).__name__),
            )
        return status, headers, body, None


def _make_request_handler(server: FunctionUrlServer) -> type[BaseHTTPRequestHandler]:
    class FunctionUrlRequestHandler(QuietRequestHandler):
        server_version = "FunctionUrl"

        def _read_body(self) -> bytes | None:
            """The request body, or None once it is known to exceed the payload limit."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks) if total <= MAX_PAYLOAD_BYTES else None
                    total += size
                    chunk = self.rfile.read(size)
                    if total <= MAX_PAYLOAD_BYTES:
                        chunks.append(chunk)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                # Read and drop it, so the client gets the 413 rather than a reset mid-upload.
                while length > 0:
                    length -= len(self.rfile.read(min(length, 1 << 20)) or b"\0" * length)
                return None
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            path = self.path.partition("?")[0]
            try:
                body = self._read_body()
            except ValueError:
                self.close_connection = True
                server._record(UrlRequest(self.command, path, 400, None, "bad body framing"))
                self._answer(400, [("Content-Type", "application/json")], b'{"Message":"Bad Request"}')
                return
            if body is None:
                server._record(UrlRequest(self.command, path, 413, None, "request too large"))
                self._answer(413, *_too_large())
                return
            event = build_event(
                method=self.command,
                target=self.path,
                protocol=self.request_version,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                url_id=server.url_id,
                region=server.region,
            )
            request_id = event["requestContext"]["requestId"]
            if len(json.dumps(event)) > MAX_PAYLOAD_BYTES:  # base64 grows a body by a third
                server._record(UrlRequest(self.command, path, 413, request_id, "request too large"))
                self._answer(413, *_too_large())
                return
            status, headers, payload, error = server.invoke(event)
            headers.append(("x-amzn-RequestId", request_id))
            # Recorded before answering, so a test that has the answer also has the record.
            server._record(UrlRequest(self.command, path, status, request_id, error))
            self._answer(status, headers, payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return FunctionUrlRequestHandler


def _too_large() -> tuple[list[tuple[str, str]], bytes]:
    message = {"Message": f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation"}
    return [("Content-Type", "application/json"), ("x-amzn-ErrorType", "RequestTooLargeException")], json.dumps(
        message
    ).encode()
