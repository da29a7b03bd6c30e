"""Every download has an overall deadline, even when each read arrives just inside the read timeout.

A real loopback HTTP server in a thread trickles its answer one byte at a time, each byte well inside the read
timeout, so only an overall deadline can end the download.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from seedance_pipeline.adapters.result_download import ResultDownloader
from seedance_pipeline.errors import ResultUnavailable

READ_TIMEOUT = 0.5
BYTE_EVERY = 0.05  # a tenth of the read timeout: no single read ever times out


class TricklingServer:
    def __init__(self, head: bytes, body_bytes: int, trickle_head: bool) -> None:
        self.head = head
        self.body_bytes = body_bytes
        self.trickle_head = trickle_head
        self.stopped = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/results/slow.mp4"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # stopped before any client came
        try:
            conn.recv(65536)
            if not self.trickle_head:
                conn.sendall(self.head)
            payload = (self.head if self.trickle_head else b"") + b"x" * self.body_bytes
            for byte in payload:
                if self.stopped.wait(BYTE_EVERY):
                    return
                conn.sendall(bytes([byte]))
        except OSError:
            return  # the client hung up: what the deadline is for
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept; close alone does not
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def trickling() -> Iterator[type[TricklingServer]]:
    servers: list[TricklingServer] = []

    def start(head: bytes, body_bytes: int = 100_000, trickle_head: bool = False) -> TricklingServer:
        server = TricklingServer(head, body_bytes, trickle_head)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 100000\r\n\r\n"


def downloader() -> ResultDownloader:
    return ResultDownloader(allow_private=True, connect_timeout=1.0, read_timeout=READ_TIMEOUT)


def test_a_body_trickling_inside_the_read_timeout_is_cut_off_at_the_deadline(trickling):
    server = trickling(HEAD)
    started = time.monotonic()

    stream = downloader().open(server.url, max_bytes=1_000_000, deadline=started + 1.0)
    with pytest.raises(ResultUnavailable, match="ran out of time") as caught:
        stream.read(8 * 1024 * 1024)  # one part-sized read: the deadline must end it from the inside
    elapsed = time.monotonic() - started
    stream.close()

    assert 1.0 <= elapsed < 1.0 + READ_TIMEOUT
    assert "slow.mp4" in caught.value.message


def test_a_body_read_in_small_pieces_is_cut_off_at_the_deadline_too(trickling):
    server = trickling(HEAD)
    started = time.monotonic()

    def drain(stream) -> None:
        while stream.read(16):
            pass

    with downloader().open(server.url, max_bytes=1_000_000, deadline=started + 0.8) as stream:  # noqa: SIM117
        with pytest.raises(ResultUnavailable, match="ran out of time"):
            drain(stream)

    assert time.monotonic() - started < 0.8 + READ_TIMEOUT


def test_response_headers_trickling_in_are_cut_off_at_the_deadline(trickling):
    server = trickling(HEAD, body_bytes=0, trickle_head=True)
    started = time.monotonic()

    with pytest.raises(ResultUnavailable, match="ran out of time"):
        downloader().open(server.url, max_bytes=1_000_000, deadline=started + 0.8)

    assert time.monotonic() - started < 0.8 + READ_TIMEOUT


def test_a_deadline_already_past_refuses_to_start(trickling):
    server = trickling(HEAD)

    with pytest.raises(ResultUnavailable, match="ran out of time"):
        downloader().open(server.url, max_bytes=1_000_000, deadline=time.monotonic() - 1)


def test_a_download_that_finishes_in_time_is_whole():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    body = bytes(range(256)) * 40

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/results/fast.mp4"
    try:
        with downloader().open(url, max_bytes=len(body), deadline=time.monotonic() + 5) as stream:
            received = b""
            while piece := stream.read(1000):
                received += piece
    finally:
        thread.join(timeout=5)
        listener.close()

    assert received == body
