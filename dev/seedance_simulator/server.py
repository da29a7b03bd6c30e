"""HTTP front end: the provider's API in both dialects plus the result URLs, over the stdlib threading server.

The unified gateway dialect lives at `/v2/videos/generations`; the native Ark dialect at
`/api/v3/contents/generations/tasks`. Both share one set of tasks, knobs and counters.

Never logs request headers: the Authorization header carries the API key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

from .ark_dialect import ark_task_payload
from .ark_routes import ARK_PREFIX, LAST_FRAME_SUFFIX, VIDEO_SUFFIX, ArkRoutes
from .callbacks import Callbacks
from .errors import ApiError, format_retry_after
from .input_images import load_image
from .knobs import Counters, Knobs
from .render import RenderCache
from .result_files import ResultFiles
from .shapes import query_payload
from .tasks import Simulator, TaskRecord
from .validation import parse_json_body, redact_body, validate_request

log = logging.getLogger("seedance_simulator")

API_PATH = "/v2/videos/generations"
RESULTS_PATH = "/results/"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a 30 MB image as base64 is ~40 MB
# A gateway's response cut off mid-way: what a client sees when a proxy truncates the body.
MALFORMED_BODY = b'{"task_id": "cgt-2025'


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent submits should queue in the kernel, not be refused
    simulator_server: SimulatorServer


class _Handler(ArkRoutes, ResultFiles):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients with a session reuse connections
    server_version = "SeedanceSimulator/1.0"
    # Headers and body go out in two sends; without this, Nagle plus delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _HTTPServer

    # -- plumbing ----------------------------------------------------------------------------------------

    @property
    def sim(self) -> SimulatorServer:
        return self.server.simulator_server

    def log_message(self, format: str, *args: Any) -> None:
        # Request line and status only; headers (and so the API key) are never logged.
        log.debug("%s - %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would desynchronise the connection
            raise ApiError(400, "InvalidParameter", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        if getattr(self, "_lose_answer", False):
            # The work is done (a create made its task); the answer never leaves.
            self._lose_answer = False
            self.close_connection = True
            self.sim.counters.incr("dropped")
            return
        # Counted before the answer leaves, so a client that reads the counters right after never races it.
        self.sim.counters.record_status(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", headers)

    def _send_error(self, error: ApiError) -> None:
        self._send_json(error.status, error.body(self.sim.knobs.error_shape), error.headers)

    def _record_create_body(self, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """A create's body, parsed and as the counters keep it (data URLs shortened). It is recorded before it is
        validated, and even when it does not parse, so a test sees what a refused request sent."""
        counters = self.sim.counters
        try:
            body = parse_json_body(raw)
        except ApiError:
            counters.record_body({"_unparseable": raw[:200].decode("utf-8", "replace")})
            raise
        redacted = redact_body(body)
        assert isinstance(redacted, dict)
        counters.record_body(redacted)
        return body, redacted

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        ark = path.startswith(ARK_PREFIX + "/")
        try:
            body = self._read_body()
            if ark:
                self._ark_dispatch(method, path, url.query, body)
            elif path == API_PATH:
                if method != "POST":
                    raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {API_PATH}.")
                self._api_call("POST", lambda: self._submit(body))
            elif path.startswith(API_PATH + "/") and method == "GET":
                task_id = path[len(API_PATH) + 1 :]
                self._api_call("GET", lambda: self._query(task_id))
            elif path.startswith(RESULTS_PATH) and method in ("GET", "HEAD"):
                self._download(path[len(RESULTS_PATH) :])
            elif path == "/healthz" and method == "GET":
                self._send_json(200, {"ok": True})
            else:
                raise ApiError(404, "NotFound", f"No route for {method} {path}.")
        except ApiError as error:
            if ark:
                self._send_json(error.status, error.ark_body(), error.headers)
            else:
                self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer
        except Exception:
            log.exception("unexpected error answering %s %s", method, path)
            internal = ApiError(500, "InternalServiceError", "The simulator hit an unexpected error.")
            if ark:
                self._send_json(500, internal.ark_body())
            else:
                self._send_error(internal)

    # -- API endpoints -------------------------------------------------------------------------------------

    def _api_call(self, method: str, answer: Callable[[], None], counter: str | None = None) -> None:
        """What every API call goes through: count, delay, injected faults, authentication, then the answer.

        Creates count as `submit` and task reads as `query` in both dialects; Ark lists and deletes have their own.
        """
        knobs, counters = self.sim.knobs, self.sim.counters
        counters.incr(counter or ("submit" if method == "POST" else "query"))
        if knobs.latency_seconds > 0:
            time.sleep(knobs.latency_seconds)
        fault = self.sim.simulator.take_fault(method)
        if fault == "drop":
            # No status line at all: the client sees the connection closed under it.
            self.close_connection = True
            self.sim.counters.incr("dropped")
            return
        if fault == "server_error":
            status = knobs.server_error_status
            code = {502: "BadGateway", 503: "ServiceUnavailable"}.get(status, "InternalServiceError")
            raise ApiError(status, code, "The service encountered an unexpected internal error.")
        if fault == "rate_limit":
            headers = {} if knobs.retry_after is None else {"Retry-After": format_retry_after(knobs.retry_after)}
            raise ApiError(
                429,
                "ModelAccountRpmRateLimitExceeded",
                "The request has exceeded the requests-per-minute limit of the model for your account. "
                "Please try again later.",
                headers,
            )
        if fault == "malformed_json":
            self._send(200, MALFORMED_BODY, "application/json; charset=utf-8")
            return
        self._authenticate()
        self._lose_answer = fault == "lose_answer"
        answer()

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization") or ""
        scheme, _, key = header.partition(" ")
        expected = self.sim.knobs.api_key
        # compare_digest: no timing hint about how much of a guessed key was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), expected.encode()):
            raise ApiError(
                401,
                "AuthenticationError",
                "The API key in the request is missing or invalid.",
            )

    def _submit(self, raw: bytes) -> None:
        body, redacted = self._record_create_body(raw)
        request = validate_request(body, self.sim.knobs.unified_callback_field)
        images = [
            load_image(ref, f"images[{i}]", timeout=self.sim.image_fetch_timeout)
            for i, ref in enumerate(request.images)
        ]
        # The first image is the first frame: it is what the clip is made from. A second one (first-and-last-frame
        # requests, which the pipeline sends for a manifest's last_frame) is where the clip ends.
        last_image = images[1] if len(images) == 2 else None
        task = self.sim.simulator.create_task(request, redacted, images[0], last_image)
        self._send_json(200, {"task_id": task.task_id})

    def _query(self, task_id: str) -> None:
        task = self.sim.simulator.get(task_id)
        if task is None:
            raise ApiError(400, "task_not_exist", f"task_not_exist: the task {task_id} does not exist.")
        self._send_json(200, self.sim.task_payload(task, "unified"))

    # -- the native Ark dialect ---------------------------------------------------------------------------------


def interrupt_on_sigterm() -> None:
    """Have SIGTERM raise KeyboardInterrupt, so a server stopped by its parent cleans up (its work dir) as on Ctrl-C."""

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)


class SimulatorServer:
    """A local stand-in for the Seedance image-to-video API, over real HTTP on 127.0.0.1.

    >>> with SimulatorServer(api_key="k", knobs=Knobs(run_seconds=1.0)) as server:
    ...     url = server.base_url + "/v2/videos/generations"
    """

    def __init__(
        self,
        api_key: str | None = None,
        knobs: Knobs | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        work_dir: str | Path | None = None,
        render_workers: int = 2,
        image_fetch_timeout: float = 10.0,
    ) -> None:
        self._knobs = knobs if knobs is not None else Knobs()
        if api_key is not None:
            self._knobs.api_key = api_key
        self._initial_knobs = self._knobs.copy()
        self.counters = Counters()
        self.image_fetch_timeout = image_fetch_timeout
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="seedance-sim-"))
        self.renders = RenderCache(self.work_dir, max_workers=render_workers)
        self.simulator = Simulator(self._knobs, self.counters, self.renders)
        self.callbacks = Callbacks(self.simulator, self._knobs, self.counters, self.task_payload)
        # Result URLs carry a signature-like query, as presigned object-storage links do; it is not checked.
        self._url_secret = secrets.token_bytes(16)
        # Bind now, so base_url is known before start().
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.simulator_server = self
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    @knobs.setter
    def knobs(self, knobs: Knobs) -> None:
        # Assigning a new Knobs copies its values in: every part of the server keeps seeing one object.
        self._knobs.restore(knobs)

    @property
    def host(self) -> str:
        host = str(self._httpd.server_address[0])
        # A wildcard bind is reachable on loopback; it is not a usable URL host.
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ark_base_url(self) -> str:
        """The native Ark dialect's base, like `https://ark.cn-beijing.volces.com/api/v3`."""
        return self.base_url + ARK_PREFIX

    def result_url(self, task: TaskRecord, suffix: str) -> str:
        signature = hashlib.sha256(self._url_secret + task.task_id.encode() + suffix.encode()).hexdigest()[:32]
        return f"{self.base_url}{RESULTS_PATH}{task.task_id}{suffix}?X-Expires=86400&X-Signature={signature}"

    def task_payload(self, task: TaskRecord, dialect: str) -> dict[str, Any]:
        """What a GET of this task answers in `dialect` ("unified" or "ark") right now; callbacks carry the same."""
        knobs = self.knobs
        video = self.result_url(task, VIDEO_SUFFIX)
        last_frame = self.result_url(task, LAST_FRAME_SUFFIX) if task.request.return_last_frame else None
        if dialect == "ark":
            return ark_task_payload(task, video, last_frame, knobs.status_override)
        return query_payload(task, time.time(), knobs.response_shape, video, last_frame, knobs.status_override)

    def start(self) -> SimulatorServer:
        self.callbacks.start()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="seedance-sim-http"
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (the command-line entry point)."""
        self.callbacks.start()
        self._httpd.serve_forever(poll_interval=0.5)

    def serve_until_interrupted(self) -> None:
        """serve_forever until Ctrl-C (or SIGTERM, after interrupt_on_sigterm), then stop and clean up."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.callbacks.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()
        self.renders.close()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- for assertions ------------------------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskRecord:
        """The internal record of a task, brought up to date. Raises KeyError for an unknown id."""
        task = self.simulator.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def tasks(self) -> list[TaskRecord]:
        return self.simulator.all_tasks()

    def reset(self) -> None:
        """Knobs back to their construction values, counters to zero, tasks forgotten. Renders stay cached."""
        self.knobs.restore(self._initial_knobs)
        self.counters.reset()
        self.simulator.reset()
        self.callbacks.reset()


__all__ = ["SimulatorServer"]
