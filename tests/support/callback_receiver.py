"""A small HTTP server that records the callbacks it is sent, for tests of whatever sends provider callbacks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# What the receiver does with a request: an HTTP status to answer, or None to close the connection unanswered.
Answer = Callable[["Received"], int | None]


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, or the raw text when it is not JSON
    received_at: float  # wall clock
    content_type: str

    @property
    def status(self) -> str:
        return str(self.body.get("status")) if isinstance(self.body, dict) else ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        url = urlsplit(self.path)
        received = Received(
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            body=body,
            received_at=time.time(),
            content_type=self.headers.get("Content-Type", ""),
        )
        receiver = self.server.receiver
        status = receiver.answer(received)
        receiver.record(received)
        if status is None:
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: CallbackReceiver


class CallbackReceiver:
    """Records every POST in arrival order and answers `answer(received)` (200 unless told otherwise)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer: Answer = answer or (lambda received: 200)
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.receiver = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/callback", **query: str) -> str:
        port = self._httpd.server_address[1]
        tail = "&".join(f"{name}={value}" for name, value in query.items())
        return f"http://127.0.0.1:{port}{path}" + (f"?{tail}" if tail else "")

    def record(self, received: Received) -> None:
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def wait_for(self, done: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        """The requests so far, once `done` holds for them; AssertionError if it does not within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self._received):
                left = deadline - time.monotonic()
                assert left > 0, f"callbacks never got there; received {[r.status for r in self._received]}"
                self._changed.wait(left)
            return list(self._received)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
