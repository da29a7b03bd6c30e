"""What the figures share: the result row, quiet pipelines, and servers in processes of their own."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, ensure_paths

MIB = 1024 * 1024
# How often EventBridge invokes PollFunction: template.yaml's rate(1 minute).
SCHEDULE_SECONDS = 60.0
# A recognisable, throwaway key shared by the local stack's secret and the simulator.
API_KEY = "sk-bench-" + secrets.token_hex(8)


@dataclass
class Row:
    """One line of the final table. `met` is None when the figure has no target or could not be measured."""

    figure: str
    this: str
    baseline: str
    ratio: str
    target: str
    met: bool | None

    @property
    def met_text(self) -> str:
        return "n/a" if self.met is None else ("yes" if self.met else "NO")


def ratio(value: float, baseline: float) -> str:
    if baseline == 0:
        return "n/a"
    return f"{value / baseline:.2f}x"


def say(figure: str, message: str) -> None:
    print(f"[{figure}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python: this one, plus the repository's source roots on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*ensure_paths(), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def run_json_child(
    module: str, args: list[str], *, env: dict[str, str], what: str, stderr_chars: int = 800
) -> dict[str, Any]:
    """Run `python -m <module> <args>` to its end; the JSON object on the last line of its stdout (what the child
    printed with print_to_parent), or a RuntimeError naming `what` with the tail of the child's stderr."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip()[-stderr_chars:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_to_parent(result: dict[str, Any]) -> None:
    """The child's half of run_json_child: its result as one JSON line, last on stdout."""
    print(json.dumps(result), flush=True)


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def quiet_pipeline() -> Iterator[None]:
    """Keep the pipeline's structured logs and EMF metric lines out of the benchmark output.

    The Powertools logger writes to the stream it captured at import; Metrics prints to sys.stdout whenever
    100 values of one metric accumulate. Both are the pipeline's normal Lambda behaviour, just noise here.
    """
    from seedance_pipeline.observability import logger

    handler: Any = logger.registered_handler
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    previous = handler.setStream(sink)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        handler.setStream(previous)
        sink.close()


def wait_for_port(port: int, process: subprocess.Popen[Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it listened")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    """Stop a child this benchmark started (by its own handle, never by name)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class MotoServerProcess:
    """`python -m moto.server` in a process of its own, so its CPU and memory are not the measured process's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )
        wait_for_port(self.port, self.process, "moto server")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)

    def rss_mib(self) -> float:
        assert self.process is not None
        return rss_mib(self.process.pid)


class SimulatorProcess:
    """The Seedance simulator in a process of its own (bench/_simulator_process.py), configured by knobs."""

    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        run_seconds: float = 0.5,
        never_finish: bool = False,
        max_running: int = 100_000,
        body_bytes: int = 64 * 1024,
    ) -> None:
        self.args = [
            "--latency",
            str(latency_seconds),
            "--run-seconds",
            str(run_seconds),
            "--max-running",
            str(max_running),
            "--body-bytes",
            str(body_bytes),
        ]
        if never_finish:
            self.args.append("--never-finish")
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> SimulatorProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._simulator_process", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(SEEDANCE_SIMULATOR_API_KEY=API_KEY),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            stop_process(self.process)
            raise RuntimeError(f"the simulator process did not start: {line!r}")
        self.base_url = line
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)


def external_stack(endpoint: str, parameters: dict[str, str] | None = None) -> Any:
    """A LocalStack (resources from template.yaml) on a moto server that runs elsewhere.

    LocalStack.start always runs moto in this process; the throughput and memory figures need it outside, so
    the stack is built with the same construction step start() uses, on the external endpoint.
    """
    from seedance_local.local_stack import LOCAL_API_BASE_URL, LocalStack
    from seedance_local.stack_template import DEFAULT_REGION, load_template, resolve_parameters

    sam = load_template()
    values = resolve_parameters(sam, {"ApiKey": API_KEY, "ApiBaseUrl": LOCAL_API_BASE_URL, **(parameters or {})})
    name = f"seedance-bench-{secrets.token_hex(3)}"
    return LocalStack._build(sam, values, endpoint, DEFAULT_REGION, name)


def image_data_url(width: int = 320, height: int = 320) -> str:
    from tests.support.images import image_bytes

    data = image_bytes(width, height, "PNG")
    return "data:image/png;base64," + base64.b64encode(data).decode()


def provider_submit_body(image_url: str) -> dict[str, Any]:
    return {
        "model": "doubao-seedance-1-0-pro-250528",
        "prompt": "benchmark",
        "images": [image_url],
        "duration": 5,
        "resolution": "720p",
        "ratio": "16:9",
    }


def patterned_body(size: int, chunk: int = 256 * 1024) -> Any:
    """A deterministic body generated chunk by chunk, so the simulator never holds it either."""

    def factory(task: Any) -> tuple[int, Iterator[bytes]]:
        block = hashlib.sha256(task.task_id.encode()).digest() * (chunk // 32)

        def chunks() -> Iterator[bytes]:
            sent = 0
            while sent < size:
                piece = block[: min(chunk, size - sent)]
                sent += len(piece)
                yield piece

        return size, chunks()

    return factory


def proc_status_mib(field: str) -> float:
    """A field of /proc/self/status (VmRSS, VmHWM), in MiB."""
    for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")
