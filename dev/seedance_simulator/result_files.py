"""The simulator's result URLs: the rendered MP4 and last frame, streamed a chunk at a time, with the object-storage
errors (S3-style XML) that expired or missing results answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .ark_routes import LAST_FRAME_SUFFIX, VIDEO_SUFFIX
from .host import SimulatorHost
from .task_states import SUCCESS

log = logging.getLogger("seedance_simulator")
CHUNK_BYTES = 256 * 1024


class ResultFiles(BaseHTTPRequestHandler):
    """Mixed into the request handler, which provides `sim` and `_send`."""

    if TYPE_CHECKING:

        @property
        def sim(self) -> SimulatorHost: ...

        _send: Callable[..., Any]

    def _storage_error(self, status: int, code: str, message: str) -> None:
        # Result URLs are object-storage links: their errors are S3-style XML, not the API's JSON.
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        self._send(status, body.encode(), "application/xml")

    def _download(self, name: str) -> None:
        knobs = self.sim.knobs
        self.sim.counters.incr("download")
        if knobs.expire_results:
            self._storage_error(403, "AccessDenied", "Request has expired")
            return
        if knobs.result_status_override is not None and knobs.result_status_override != 200:
            self._storage_error(knobs.result_status_override, "Simulated", "Status set by result_status_override")
            return
        if name.endswith(LAST_FRAME_SUFFIX):
            task_id, kind = name[: -len(LAST_FRAME_SUFFIX)], "last_frame"
        elif name.endswith(VIDEO_SUFFIX):
            task_id, kind = name[: -len(VIDEO_SUFFIX)], "video"
        else:
            self._storage_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        task = self.sim.simulator.get(task_id)
        if task is None or task.status != SUCCESS:
            self._storage_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        if kind == "video" and knobs.video_body_factory is not None:
            length, chunks = knobs.video_body_factory(task)
            self._stream(length, chunks, "video/mp4")
            return
        path = None
        if task.result is not None:
            path = task.result.video_path if kind == "video" else task.result.last_frame_path
        if path is None or not path.exists():
            self._storage_error(404, "NoSuchKey", "The specified key does not exist.")
            return
        content_type = "video/mp4" if kind == "video" else "image/png"
        with path.open("rb") as handle:
            self._stream(path.stat().st_size, iter(lambda: handle.read(CHUNK_BYTES), b""), content_type)

    def _stream(self, length: int, chunks: Iterable[bytes], content_type: str) -> None:
        """Send a body chunk by chunk: nothing larger than one chunk is ever held in memory."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.sim.counters.record_status(200)
        if self.command == "HEAD":
            return
        sent = 0
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception:
            # The status line is already out: the only honest signal left is a short body and a closed socket.
            log.exception("result body failed after %d of %d bytes", sent, length)
            self.close_connection = True
            return
        if sent != length:
            # A body shorter or longer than announced leaves the connection unusable.
            log.warning("result body was %d bytes, Content-Length said %d", sent, length)
            self.close_connection = True
