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
        self.sent = 0  # bytes of the answer sent before the client hung up (or all of them)
        self.answer_bytes = len(head) + body_bytes
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
                self.sent += len(self.head)
            payload = (self.head if self.trickle_head else b"") + b"x" * self.body_bytes
            for byte in payload:
                if self.stopped.wait(BYTE_EVERY):
                    return
                conn.sendall(bytes([byte]))
                self.sent += 1
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
# A body that trickles for three times the longest deadline below: without the deadline, the download would run
# until the body ends (and fail another way, or not at all); with it, it ends with "ran out of time" part-way.
TRICKLE_BYTES = int(3 * 1.0 / BYTE_EVERY)


def downloader() -> ResultDownloader:
    return ResultDownloader(allow_private=True, connect_timeout=1.0, read_timeout=READ_TIMEOUT)


def hung_up_part_way(server: TricklingServer) -> bool:
    server.thread.join(timeout=5)
    return 0 < server.sent < server.answer_bytes


def test_a_body_trickling_inside_the_read_timeout_is_cut_off_at_the_deadline(trickling):
    server = trickling(HEAD, body_bytes=TRICKLE_BYTES)

    stream = downloader().open(server.url, max_bytes=1_000_000, deadline=time.monotonic() + 1.0)
    with pytest.raises(ResultUnavailable, match="ran out of time") as caught:
        stream.read(8 * 1024 * 1024)  # one part-sized read: the deadline must end it from the inside
    stream.close()

    assert hung_up_part_way(server), f"{server.sent} of {server.answer_bytes} bytes sent"
    assert "slow.mp4" in caught.value.message


def test_a_body_read_in_small_pieces_is_cut_off_at_the_deadline_too(trickling):
    server = trickling(HEAD, body_bytes=TRICKLE_BYTES)

    def drain(stream) -> None:
        while stream.read(16):
            pass

    deadline = time.monotonic() + 0.8
    with downloader().open(server.url, max_bytes=1_000_000, deadline=deadline) as stream:  # noqa: SIM117
        with pytest.raises(ResultUnavailable, match="ran out of time"):
            drain(stream)

    assert hung_up_part_way(server), f"{server.sent} of {server.answer_bytes} bytes sent"


def test_response_headers_trickling_in_are_cut_off_at_the_deadline(trickling):
    server = trickling(HEAD, body_bytes=0, trickle_head=True)
    assert len(HEAD) * BYTE_EVERY > 3 * 0.8  # the head alone trickles for longer than three deadlines

    with pytest.raises(ResultUnavailable, match="ran out of time"):
        downloader().open(server.url, max_bytes=1_000_000, deadline=time.monotonic() + 0.8)

    assert hung_up_part_way(server), f"{server.sent} of {server.answer_bytes} bytes sent"


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
