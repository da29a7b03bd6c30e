"""The Lambda Invoke API on loopback, for the functions a local pipeline registers.

Handlers reach it through botocore's service-specific endpoint variable (``AWS_ENDPOINT_URL_LAMBDA``), so the code
that calls ``lambda.invoke`` in AWS runs unchanged here; moto's own Lambda would try to run the function in Docker.

    POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=$LATEST]

``FunctionName`` is a name, a partial ARN (``123456789012:function:name``) or a full ARN, optionally qualified.
``X-Amz-Invocation-Type: Event`` answers 202 at once and runs the handler on a background worker (Lambda's
asynchronous invocation); ``RequestResponse`` (the default) runs it and answers 200 with its JSON result, or with
``X-Amz-Function-Error: Unhandled`` and Lambda's error document when it raises; ``DryRun`` answers 204. Unknown
functions get the 404 ``ResourceNotFoundException`` Lambda sends. Not emulated: retries of failed asynchronous
invocations (Lambda makes two more attempts, minutes apart; here the failure is recorded for the test to see) and
the hard stop at the function's timeout (the context's remaining time still counts down from it).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from seedance_local.harness import LambdaContext
from seedance_local.loopback_http_server import LoopbackHttpServer, QuietRequestHandler
from seedance_local.stack_template import DEFAULT_ACCOUNT_ID, DEFAULT_REGION

Handler = Callable[[Any, Any], Any]

_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class RegisteredFunction:
    name: str
    handler: Handler
    timeout_seconds: float


@dataclass
class Invocation:
    """One accepted invocation: what was asked, and (once it ran) how it ended."""

    function_name: str
    invocation_type: str
    payload: Any
    request_id: str
    invoked_function_arn: str
    state: str = "queued"  # queued -> running -> succeeded | failed
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    accepted_at: float = 0.0
    finished_at: float | None = None


def parse_function_name(raw: str) -> tuple[str, str | None]:
    """(name, qualifier) from a name, partial ARN or ARN, each optionally ending in ``:qualifier``."""
    parts = raw.split(":")
    if raw.startswith("arn:") and len(parts) >= 7:  # arn:aws:lambda:region:account:function:name[:qualifier]
        return parts[6], parts[7] if len(parts) > 7 else None
    if len(parts) >= 3 and parts[1] == "function":  # account:function:name[:qualifier]
        return parts[2], parts[3] if len(parts) > 3 else None
    if len(parts) == 2:  # name:qualifier
        return parts[0], parts[1]
    return raw, None


class LambdaInvokeEmulator(LoopbackHttpServer):
    """A loopback HTTP server answering Lambda Invoke for registered functions. Start it, then :meth:`register`."""

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 4,
    ) -> None:
        super().__init__(host=host, port=port, thread_name="lambda-invoke", description="the Lambda Invoke emulator")
        self.region = region
        self.account_id = account_id
        self._functions: dict[str, RegisteredFunction] = {}
        self._invocations: list[Invocation] = []
        self._outstanding = 0
        self._idle = threading.Condition()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _make_request_handler(self)

    def start(self) -> Self:
        # The pool first: an Event invocation may arrive as soon as the server listens.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="lambda-async")
        return super().start()

    def stop(self, *, wait_seconds: float = 10.0) -> None:
        """Stop accepting invocations, give running ones ``wait_seconds`` to end, free the port. Idempotent."""
        super().stop()
        if self._pool is not None:
            self.wait_idle(wait_seconds)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def endpoint_url(self) -> str:
        """The value for AWS_ENDPOINT_URL_LAMBDA."""
        return self.origin

    # -- functions and records ---------------------------------------------------------------------------------------

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def register(self, name: str, handler: Handler, *, timeout_seconds: float = 300.0) -> None:
        """Make ``name`` invocable; ``handler(event, context)`` is called as Lambda would call it."""
        self._functions[name] = RegisteredFunction(name, handler, timeout_seconds)

    def unregister(self, name: str) -> None:
        self._functions.pop(name, None)

    def context_for(self, name: str, invoked_arn: str | None = None) -> LambdaContext:
        function = self._functions[name]
        context = LambdaContext(name, function.timeout_seconds)
        context.invoked_function_arn = invoked_arn or self.function_arn(name)
        return context

    @property
    def invocations(self) -> list[Invocation]:
        with self._idle:
            return list(self._invocations)

    def clear_invocations(self) -> None:
        with self._idle:
            self._invocations.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no asynchronous invocation is queued or running; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # -- invocation (called from the server's threads) ---------------------------------------------------------------

    def accept(self, name: str, invocation_type: str, payload: Any, invoked_arn: str) -> Invocation:
        record = Invocation(
            function_name=name,
            invocation_type=invocation_type,
            payload=payload,
            request_id=str(uuid.uuid4()),
            invoked_function_arn=invoked_arn,
            accepted_at=time.time(),
        )
        with self._idle:
            self._invocations.append(record)
            if invocation_type == "Event":
                self._outstanding += 1
        return record

    def run(self, record: Invocation) -> None:
        function = self._functions.get(record.function_name)
        record.state = "running"
        try:
            if function is None:
                raise RuntimeError(f"{record.function_name} was unregistered before it ran")
            context = self.context_for(record.function_name, record.invoked_function_arn)
            context.aws_request_id = record.request_id
            record.result = function.handler(record.payload, context)
            record.state = "succeeded"
        except Exception as exc:
            record.state = "failed"
            record.error_type = type(exc).__name__
            record.error_message = str(exc)
            record.result = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": record.request_id,
                "stackTrace": [line.rstrip() for line in traceback.format_tb(exc.__traceback__)],
            }
        finally:
            record.finished_at = time.time()
            if record.invocation_type == "Event":
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def submit_async(self, record: Invocation) -> None:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the Lambda Invoke emulator is stopped")
        pool.submit(self.run, record)

    def lookup(self, raw_name: str, qualifier: str | None) -> tuple[str | None, str]:
        """(registered name or None, the ARN the caller asked for)."""
        name, arn_qualifier = parse_function_name(raw_name)
        qualifier = qualifier or arn_qualifier
        arn = self.function_arn(name) + (f":{qualifier}" if qualifier else "")
        if name not in self._functions or qualifier not in (None, "$LATEST"):
            return None, arn
        return name, arn


def _make_request_handler(emulator: LambdaInvokeEmulator) -> type[BaseHTTPRequestHandler]:
    class InvokeRequestHandler(QuietRequestHandler):
        server_version = "LambdaInvoke"

        def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, error_type: str, message: str, kind: str = "User") -> None:
            body = json.dumps({"Type": kind, "Message": message, "message": message}).encode()
            headers = {
                "Content-Type": "application/json",
                "x-amzn-ErrorType": error_type,
                "x-amzn-RequestId": str(uuid.uuid4()),
            }
            self._answer(status, body, headers)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            if not (split.path.startswith(_PREFIX) and split.path.endswith(_SUFFIX)):
                self._error(404, "UnknownOperationException", "Unknown operation")
                return
            raw_name = unquote(split.path[len(_PREFIX) : -len(_SUFFIX)])
            qualifiers = parse_qs(split.query).get("Qualifier")
            qualifier = qualifiers[0] if qualifiers else None
            name, arn = emulator.lookup(raw_name, qualifier)
            if name is None:
                self._error(404, "ResourceNotFoundException", f"Function not found: {arn}")
                return
            invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
            if invocation_type not in ("Event", "RequestResponse", "DryRun"):
                self._error(400, "InvalidParameterValueException", f"Unsupported invocation type {invocation_type}")
                return
            limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
            if len(raw) > limit:
                self._error(
                    413, "RequestTooLargeException", f"Request must be smaller than {limit} bytes for the Invoke"
                )
                return
            try:
                payload = json.loads(raw) if raw.strip() else {}
            except ValueError:
                self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
                return
            if invocation_type == "DryRun":
                self._answer(204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
                return
            record = emulator.accept(name, invocation_type, payload, arn)
            if invocation_type == "Event":
                emulator.submit_async(record)
                self._answer(202, headers={"x-amzn-RequestId": record.request_id})
                return
            emulator.run(record)
            headers = {
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": record.request_id,
            }
            if record.state == "failed":
                headers["X-Amz-Function-Error"] = "Unhandled"
            try:
                body = json.dumps(record.result).encode()
            except (TypeError, ValueError) as exc:
                headers["X-Amz-Function-Error"] = "Unhandled"
                body = json.dumps(
                    {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError"}
                ).encode()
            self._answer(200, body, headers)

    return InvokeRequestHandler
