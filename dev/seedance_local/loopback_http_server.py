"""The plumbing the local AWS emulators share: a threading HTTP server on loopback, served from a daemon thread.

A subclass says which request handler answers (:meth:`LoopbackHttpServer._request_handler_class`); this class
starts and stops the server, frees the port and says where it listens. Port 0 (the default) takes a free port.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# How often the serving thread looks for a shutdown request: short, so stop() returns at once.
_POLL_SECONDS = 0.05


class LoopbackHttpServer:
    """Start it (or use it as a context manager); :meth:`stop` is safe to call twice."""

    def __init__(self, *, host: str, port: int, thread_name: str, description: str) -> None:
        self._host, self._port = host, port
        self._thread_name = thread_name
        # Names the server in the error for asking where an unstarted one listens, e.g. "the Function URL server".
        self._description = description
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((self._host, self._port), self._request_handler_class())
            self._httpd.daemon_threads = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(_POLL_SECONDS,), name=self._thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://<host>:<port>`` of the running server, no trailing slash."""
        if self._httpd is None:
            raise RuntimeError(f"{self._description} is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"


class QuietRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive like the AWS endpoints it stands in for, and no access log."""

    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # Silent on purpose: the default access log prints the query string, which can hold callback tokens, and
        # the tests read the emulators' own records instead.
        return
