"""Drive the real Lambda handlers on one machine: a LocalStack (moto server) plus a provider over HTTP.

Used by `seedance-pipeline demo/run`, the integration tests and the benchmarks, so all three exercise the same
path that runs in Lambda: real S3 events into submit_handler, scheduled events into poll_handler.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"
# The function behind the template's Function URL (CallbackMode=on), and the worker it hands claimed ends to
# (an asynchronous Invoke); their local names are their logical ids.
CALLBACK_FUNCTION = "CallbackFunction"
CALLBACK_WORKER_FUNCTION = "CallbackWorkerFunction"


def load_handler(name: str) -> ModuleType:
    """Import functions/<name>/<name>_handler.py as Lambda does, without needing it on sys.path."""
    module_name = f"{name}_handler"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = REPO_ROOT / "functions" / name / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    """The parts of the Lambda context object the handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def s3_put_event(
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    sequencer: str,
    version_id: str | None = None,
    event_name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    """An S3 notification shaped exactly like events/s3-put.json, for a real object."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / "s3-put.json").read_text())
    record = event["Records"][0]
    record["eventName"] = event_name
    record["eventTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    record["s3"]["object"] = obj
    return event


def schedule_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / "schedule.json").read_text())
    event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return event


_sequence = 0


def next_sequencer() -> str:
    """S3 sequencers grow for later events on a key; the clock plus a counter does that here."""
    global _sequence
    _sequence += 1
    return f"{time.time_ns():016X}{_sequence:04X}"


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class LocalPipeline:
    """The pipeline on a LocalStack: upload images, deliver their events, poll until every job is terminal."""

    def __init__(self, stack: Any, *, api_base_url: str, log_stream: Any = None, **overrides: str) -> None:
        self.stack = stack
        self.environment = stack.environment(api_base_url=api_base_url, **overrides)
        self.s3 = stack.client("s3")
        self._log_stream = log_stream
        self._env_cm: Any = None
        self._previous_stream: Any = None
        self.job_ids: dict[str, str] = {}
        self.callback_handler: ModuleType | None = None
        self.callback_worker_handler: ModuleType | None = None
        self.poll_runs: list[tuple[float, float]] = []
        """(start, end) of every poll_handler run, epoch seconds."""

    def __enter__(self) -> LocalPipeline:
        self._env_cm = patched_environ(self.environment)
        self._env_cm.__enter__()
        from seedance_pipeline.runtime import reset_shared_runtime

        reset_shared_runtime()
        self.submit_handler = load_handler("submit")
        self.poll_handler = load_handler("poll")
        services = self.lambda_services
        if services is not None and services.function_url(CALLBACK_FUNCTION) is not None:
            # Served from now on: provider callbacks over the Function URL, and the hand-offs to the worker.
            self.callback_handler = load_handler("callback")
            self.callback_worker_handler = load_handler("callback_worker")
            services.serve(CALLBACK_FUNCTION, self.callback_handler.lambda_handler)
            services.serve(CALLBACK_WORKER_FUNCTION, self.callback_worker_handler.lambda_handler)
        if self._log_stream is not None:
            from seedance_pipeline.observability import logger

            handler = logger.registered_handler
            # Assigned rather than setStream(): that flushes the old stream, which pytest may have closed.
            self._previous_stream = handler.stream  # type: ignore[attr-defined]
            handler.stream = self._log_stream  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        from seedance_pipeline.runtime import reset_shared_runtime

        if self.callback_handler is not None and self.lambda_services is not None:
            # Background hand-offs finish under this pipeline's environment, before it is restored.
            self.lambda_services.withdraw(CALLBACK_FUNCTION)
            self.lambda_services.withdraw(CALLBACK_WORKER_FUNCTION)
            self.callback_handler = self.callback_worker_handler = None
        if self._previous_stream is not None:
            from seedance_pipeline.observability import logger

            logger.registered_handler.stream = self._previous_stream  # type: ignore[attr-defined]
            self._previous_stream = None
        reset_shared_runtime()
        self._env_cm.__exit__(*exc)

    @property
    def lambda_services(self) -> Any:
        """The stack's Function URLs and Invoke API (None for a stack without them)."""
        return getattr(self.stack, "lambda_services", None)

    @property
    def callback_url(self) -> Any:
        """The FunctionUrlServer of CallbackFunction, or None when callbacks are off."""
        services = self.lambda_services
        return services.function_url(CALLBACK_FUNCTION) if services is not None else None

    @property
    def invocations(self) -> list[Any]:
        """Every Invoke call the handlers made (the callback hand-offs), oldest first."""
        services = self.lambda_services
        return services.emulator.invocations if services is not None else []

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait for the background hand-offs to finish; False if some still run after ``timeout``."""
        services = self.lambda_services
        return services.emulator.wait_idle(timeout) if services is not None else True

    def arrival(self, job: Any) -> str | None:
        """How a terminal job got there: "callback" (a hand-off run for this job made it terminal), "poll" (a poll
        run did), "submit", or None while it is live. A hand-off leases its job, so the two cannot both deliver."""
        if job is None or job.finished_at is None:
            return None
        for record in self.invocations:
            payload = record.payload if isinstance(record.payload, dict) else {}
            handed_off = (payload.get("seedance_callback") or {}).get("job_id") == job.job_id
            if handed_off and record.accepted_at <= job.finished_at <= (record.finished_at or 0):
                return "callback"
        if any(start <= job.finished_at <= end for start, end in self.poll_runs):
            return "poll"
        return "submit"

    @property
    def runtime(self) -> Any:
        from seedance_pipeline.runtime import shared_runtime

        return shared_runtime()

    # --- uploads and events --------------------------------------------------------------------------
    def upload(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Put an object and return the S3 event that S3 would send for it."""
        response = self.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=data, Metadata=metadata or {})
        return s3_put_event(
            self.stack.bucket,
            key,
            size=len(data),
            etag=response["ETag"].strip('"'),
            sequencer=next_sequencer(),
            version_id=response.get("VersionId"),
        )

    def submit(self, event: dict[str, Any], *, timeout_seconds: float = 90) -> dict[str, Any]:
        result: dict[str, Any] = self.submit_handler.lambda_handler(
            event, LambdaContext("SubmitFunction", timeout_seconds)
        )
        for outcome in result.get("outcomes", []):
            if outcome.get("job_id"):
                self.job_ids[outcome["key"]] = outcome["job_id"]
        return result

    def poll(self, *, timeout_seconds: float = 300) -> dict[str, Any]:
        started = time.time()
        try:
            result: dict[str, Any] = self.poll_handler.lambda_handler(
                schedule_event(), LambdaContext("PollFunction", timeout_seconds)
            )
        finally:
            self.poll_runs.append((started, time.time()))
        return result

    def jobs(self) -> dict[str, Any]:
        store = self.runtime.store
        return {key: store.get(job_id) for key, job_id in self.job_ids.items()}

    def run_until_terminal(
        self,
        *,
        timeout: float = 180.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: bool = True,
        poll_every: float = 0.2,
    ) -> dict[str, Any]:
        """Invoke the poller as the schedule would until every job is terminal (or the timeout passes).

        ``poll=False`` only watches the job records: what callbacks alone deliver. ``poll_every`` is the pause
        between poll runs (the schedule's minute, scaled down).
        """
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            if on_progress:
                on_progress(jobs)
            if all(job is not None and job.status.is_terminal for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "jobs still live after the timeout: "
                    + ", ".join(f"{k}={j.status.value if j else 'missing'}" for k, j in jobs.items())
                )
            if poll:
                self.poll(timeout_seconds=min(300.0, max(30.0, deadline - time.monotonic())))
            time.sleep(poll_every if poll else 0.05)

    def download_outputs(self, job: Any, destination: Path) -> list[Path]:
        """Copy a SUCCEEDED job's outputs into destination, mirroring their keys under the output prefix."""
        written = []
        prefix = self.runtime.settings.output_prefix
        keys = [job.outputs.video_key, job.outputs.last_frame_key, job.outputs.sidecar_key]
        for key in filter(None, keys):
            target = destination / key[len(prefix) :] if key.startswith(prefix) else destination / key
            target.parent.mkdir(parents=True, exist_ok=True)
            self.s3.download_file(job.outputs.bucket, key, str(target))
            written.append(target)
        return written


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
