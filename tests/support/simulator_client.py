"""Helpers for the simulator tests: test images, a small provider client, and a stand-in image host."""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from PIL import Image, ImageDraw

from seedance_simulator import Knobs, SimulatorServer

API_KEY = "test-key"
MODEL = "doubao-seedance-1-0-pro-250528"
FAST = Knobs(api_key=API_KEY, run_seconds=0.2)


def make_image(width: int = 640, height: int = 360, fmt: str = "PNG") -> bytes:
    """A picture with detail everywhere, so any camera move changes the pixels."""
    image = Image.new("RGB", (width, height), (20, 40, 80))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 16):
        draw.line([(x, 0), (width - x, height)], fill=(x * 255 // width, 160, 255 - x * 255 // width), width=3)
    for y in range(0, height, 24):
        draw.line([(0, y), (width, y)], fill=(240, y * 255 // height, 60), width=2)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), outline=(255, 255, 255), width=8)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


DEFAULT_IMAGE_URL = data_url(make_image())


class SimulatorSession:
    """What the dialects' test clients share: the server, a session that ignores proxy settings (the simulator is
    on loopback) and the Bearer key the simulator accepts."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.trust_env = False
        self.headers = {"Authorization": f"Bearer {API_KEY}"}


class Client(SimulatorSession):
    """The two provider calls over real HTTP, plus polling, as a pipeline would make them."""

    @property
    def submit_url(self) -> str:
        return self.server.base_url + "/v2/videos/generations"

    def body(self, without: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": MODEL,
            "prompt": "a slow push-in over the scene",
            "images": [DEFAULT_IMAGE_URL],
            "resolution": "480p",
            "ratio": "16:9",
            "duration": 5,
        }
        body.update(overrides)
        for key in without:
            body.pop(key, None)
        return body

    def submit_raw(
        self,
        body: Any = None,
        headers: dict[str, str] | None = None,
        without: tuple[str, ...] = (),
        **overrides: Any,
    ) -> requests.Response:
        payload = self.body(without, **overrides) if body is None else body
        return self.session.post(
            self.submit_url, json=payload, headers=self.headers if headers is None else headers, timeout=30
        )

    def submit(self, **overrides: Any) -> str:
        response = self.submit_raw(**overrides)
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def query_raw(self, task_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(
            f"{self.submit_url}/{task_id}", headers=self.headers if headers is None else headers, timeout=30
        )

    def query(self, task_id: str) -> dict[str, Any]:
        response = self.query_raw(task_id)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait(
        self, task_id: str, timeout: float = 30.0, statuses: tuple[str, ...] = ("SUCCESS", "FAILURE")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.query(task_id)
            if answer["status"].upper() in statuses or answer["status"] in ("succeeded", "failed"):
                return answer
            assert time.monotonic() < deadline, f"task {task_id} still {answer['status']} after {timeout}s"
            time.sleep(0.05)


class _FileHandler(BaseHTTPRequestHandler):
    """Serves the routes a test registers: bytes, a status, or a slow answer."""

    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}

    def do_GET(self) -> None:
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ImageHost:
    """A plain HTTP server standing in for wherever the input images live."""

    def __init__(self) -> None:
        # A handler class of its own, so each host has its own routes.
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        handler = type("Handler", (_FileHandler,), {"routes": self.routes})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve_bytes(self, path: str, data: bytes, content_type: str = "image/png", delay: float = 0.0) -> str:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            time.sleep(delay)
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the simulator may stop reading
                handler.wfile.write(data)

        self.routes[path] = answer
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
