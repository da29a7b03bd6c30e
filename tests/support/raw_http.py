"""A tiny local HTTP server that answers with scripted raw bytes: any status, any body, cut, slow or never.

The provider client is tested through real sockets so that what urllib3 and requests do with a cut body, a bad
gzip stream or a closed connection is what the test sees; nothing inside the client is mocked.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    cut_after: int | None = None  # announce the whole body, send only this many bytes, close
    hang_up: bool = False  # read the request and close without a byte of answer

    def render(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} X", f"Content-Length: {len(self.body)}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        body = self.body if self.cut_after is None else self.body[: self.cut_after]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_answer(status: int, text: str, **headers: str) -> Answer:
    return Answer(status, text.encode(), {"Content-Type": "application/json", **headers})


class RawHttpServer:
    """Serves `script` in order (then `default`); records each request's method and path."""

    def __init__(self) -> None:
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._answer(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                # Scripted answers cut connections on purpose; a client that hangs up first is not an error here.
                if not isinstance(sys.exc_info()[1], OSError):
                    super().handle_error(request, client_address)  # type: ignore[arg-type]

        self._server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, *answers: Answer) -> RawHttpServer:
        self.script.clear()
        self.script.extend(answers)
        self.requests.clear()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), 0)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return
            rest += chunk
        self.requests.append((method, path))
        answer = self.script.popleft() if self.script else self.default
        if answer.delay:
            time.sleep(answer.delay)
        if not answer.hang_up:
            try:
                sock.sendall(answer.render())
            except OSError:
                return  # the client gave up first (its read timeout)
        sock.shutdown(socket.SHUT_RDWR)
