"""Seedance HTTP client: one pooled session, retries budgeted against a deadline, tolerant parsing of every answer.

What a submission answer means (the rule that keeps a task from being paid twice)
---------------------------------------------------------------------------------
Once the request body may have reached the provider, only a clear refusal proves that no task was created:

* 400, 401, 403, 404, 409, 422 or 429 whose body is a readable error: a JSON object carrying an error code or
  message, in either shape (`{"error": {"code", "message"}}` or `{"code", "message"}`);
* 503 with such a body: the provider or its gateway saying, in its own words, that it is not taking requests.

Anything else after the body left is SubmissionUncertain: a 2xx whose body is cut, fails to decompress, is not a
JSON object or carries no usable task id; 500 (the task may exist, made before the crash); 502 and 504 (a gateway
passed the request on and lost the answer); 3xx, 408, 413 and every other status; a refusal status with an
unreadable body (a proxy's HTML page says nothing about what the provider did); a connection dropped or a read
timeout while waiting for the answer. Only faults before the request left (refused connection, DNS, connect
timeout, a budget spent before the attempt) are ProviderUnavailable. Only those and the retryable refusals (429,
503) are retried, within the call, and only while the deadline allows.

What a status answer means
--------------------------
A GET is safe to repeat, and a paid task must not end on a hiccup: only a definitive "unknown task" ends a job
(404, or 400/410 whose error code says the task does not exist): ProviderRejected. 401/403 are ProviderAuthError
(the job waits for the key); 429 is ProviderThrottled; every other answer (408, 409, 425, other 4xx, 5xx, an
unreadable 2xx) is ProviderUnavailable: asked again later, until the job's age limit ends it.

Deadlines
---------
`submit` and `get` take `deadline`, a `time.monotonic()` value by which the call must have returned (None: only
the retry count bounds it). No attempt starts with less than MIN_ATTEMPT_SECONDS left (a POST:
MIN_SUBMIT_ATTEMPT_SECONDS), no backoff or Retry-After sleep runs past the deadline, and each attempt's connect
and read timeouts are cut to what is left. Out of time before a submission was sent: ProviderUnavailable (safe,
the job goes back to WAITING); while waiting for its answer: SubmissionUncertain. The read timeout bounds each
wait for bytes, not the whole answer: a provider dribbling a byte at a time can still stretch one attempt.

The retries are this module's loop, not urllib3's: urllib3 retries by status alone, before the body can be read,
and cannot see a per-call deadline; the session's adapter retries nothing.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from seedance_pipeline.errors import (
    PipelineError,
    ProviderAuthError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
    SubmissionUncertain,
)
from seedance_pipeline.models import ProviderState, TaskResult

GENERATIONS_PATH = "/v2/videos/generations"

_STATE_BY_STATUS = {
    "NOT_START": ProviderState.PENDING,
    "SUBMITTED": ProviderState.PENDING,
    "QUEUED": ProviderState.PENDING,
    "PENDING": ProviderState.PENDING,
    "UNKNOWN": ProviderState.PENDING,
    "IN_PROGRESS": ProviderState.RUNNING,
    "RUNNING": ProviderState.RUNNING,
    "PROCESSING": ProviderState.RUNNING,
    "SUCCESS": ProviderState.SUCCEEDED,
    "SUCCEEDED": ProviderState.SUCCEEDED,
    "FAILURE": ProviderState.FAILED,
    "FAILED": ProviderState.FAILED,
    "CANCELLED": ProviderState.FAILED,
    "CANCELED": ProviderState.FAILED,
    "EXPIRED": ProviderState.FAILED,
}

# Where gateways of this family put the video and last-frame URLs, in the order of docs/provider-api.md
# ("Where result URLs are found").
_VIDEO_URL_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("data", "output"),
    ("data", "outputs", 0),
    ("result_url",),
    ("data", "content", "video_url"),
    ("data", "data", "content", "video_url"),
    ("video_url",),
    ("url",),
)
_LAST_FRAME_URL_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("data", "content", "last_frame_url"),
    ("data", "last_frame_url"),
    ("last_frame_url",),
)
_FAILURE_TEXT_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("fail_reason",),
    ("data", "error", "message"),
    ("error", "message"),
    ("message",),
)

_MISSING = object()


def _dig(document: Any, path: tuple[str | int, ...]) -> Any:
    node = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or len(node) <= step:
                return _MISSING
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return _MISSING
            node = node[step]
    return node


def _first_present(document: Any, paths: tuple[tuple[str | int, ...], ...]) -> Any:
    for path in paths:
        value = _dig(document, path)
        if value is not _MISSING and value not in (None, ""):
            return value
    return _MISSING


# An attempt needs at least this long to connect and be answered; with less left it is not started. A POST cut
# short ends uncertain (a person must look), so it asks for more room than a GET, which is simply asked again.
MIN_ATTEMPT_SECONDS = 1.0
MIN_SUBMIT_ATTEMPT_SECONDS = 5.0
MAX_TASK_ID_LENGTH = 256
# The longest Retry-After kept on a ProviderThrottled: a gateway asking for a day must not park a job for a day.
MAX_RECORDED_RETRY_AFTER = 3600.0

# Statuses that, with a readable error body, prove a submission was refused, and what each becomes.
_SUBMIT_REFUSALS: dict[int, type[PipelineError]] = {
    400: ProviderRejected,
    401: ProviderAuthError,
    403: ProviderAuthError,
    404: ProviderRejected,
    409: ProviderRejected,
    422: ProviderRejected,
    429: ProviderThrottled,
    503: ProviderUnavailable,
}
_RETRYABLE = (ProviderThrottled, ProviderUnavailable)
# Requests raises these while preparing a request, before anything is sent.
_NOT_SENT = (
    requests.exceptions.ConnectTimeout,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)
_UNKNOWN_TASK_CODE = re.compile(r"not_?exists?|not_?found", re.IGNORECASE)


class _Answer:
    """One attempt's outcome: a value, or an error and how long the provider asked us to wait before the next."""

    __slots__ = ("error", "retry_after", "value")

    def __init__(self, value: Any = None, error: PipelineError | None = None, retry_after: float | None = None):
        self.value = value
        self.error = error
        self.retry_after = retry_after


class SeedanceClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 3,
        max_retry_after: float = 20.0,
        pool_size: int = 32,
        backoff_factor: float = 0.5,
        backoff_max: float = 8.0,
        min_submit_seconds: float = MIN_SUBMIT_ATTEMPT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retries = max(0, retries)
        self._max_retry_after = max_retry_after
        self._backoff_factor = backoff_factor
        self._backoff_max = backoff_max
        self._min_submit_seconds = min_submit_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._session = requests.Session()
        # No urllib3 retries at all: every repeat goes through _call, which reads the answer and the deadline first.
        adapter = HTTPAdapter(
            max_retries=Retry(total=0, redirect=0, raise_on_status=False), pool_connections=4, pool_maxsize=pool_size
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def __repr__(self) -> str:  # never show the key
        return f"SeedanceClient(base_url={self._base_url!r})"

    def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str:
        """POST a generation; returns the task id. `deadline` is a time.monotonic() value (see the module doc)."""
        url = self._base_url + GENERATIONS_PATH

        def attempt(timeout: tuple[float, float]) -> _Answer:
            try:
                response = self._session.post(
                    url, json=body, headers=self._headers, timeout=timeout, allow_redirects=False
                )
            except requests.exceptions.RequestException as exc:
                return _Answer(error=_submission_fault(exc))
            return _submission_answer(response)

        task_id: str = self._call(
            attempt, deadline, min_left=self._min_submit_seconds, out_of_time="the submission was not sent"
        )
        return task_id

    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
        """GET a task's status. `deadline` is a time.monotonic() value (see the module doc)."""
        url = f"{self._base_url}{GENERATIONS_PATH}/{quote(task_id, safe='')}"

        def attempt(timeout: tuple[float, float]) -> _Answer:
            try:
                response = self._session.get(url, headers=self._headers, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                return _Answer(error=ProviderUnavailable(f"status check failed: {_short(exc)}"))
            return _status_answer(task_id, response)

        result: TaskResult = self._call(
            attempt, deadline, min_left=MIN_ATTEMPT_SECONDS, out_of_time="the status check was not made"
        )
        return result

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        attempt: Callable[[tuple[float, float]], _Answer],
        deadline: float | None,
        *,
        min_left: float,
        out_of_time: str,
    ) -> Any:
        """Run attempts until one gives a value or a final error, never starting or sleeping past the deadline."""
        error: PipelineError = ProviderUnavailable(f"no time left before the deadline; {out_of_time}")
        for number in range(self._retries + 1):
            timeout = self._attempt_timeout(deadline, min_left)
            if timeout is None:
                break  # raises the last refusal, or "no time left" when nothing was attempted
            answer = attempt(timeout)
            if answer.error is None:
                return answer.value
            error = answer.error
            if not isinstance(error, _RETRYABLE) or number == self._retries:
                break
            wait = self._wait_before_retry(number, answer.retry_after)
            if wait is None or not self._fits(wait, deadline, min_left):
                break
            self._sleep(wait)
        raise error

    def _attempt_timeout(self, deadline: float | None, min_left: float) -> tuple[float, float] | None:
        if deadline is None:
            return self._connect_timeout, self._read_timeout
        left = deadline - self._monotonic()
        if left < min_left:
            return None
        return min(self._connect_timeout, left), min(self._read_timeout, left)

    def _wait_before_retry(self, number: int, retry_after: float | None) -> float | None:
        """Seconds to sleep before the next attempt; None when the provider asks for longer than we wait in a call."""
        if retry_after is not None:
            return retry_after if retry_after <= self._max_retry_after else None
        backoff = min(self._backoff_max, self._backoff_factor * (2**number))
        return backoff + random.uniform(0, self._backoff_factor)

    def _fits(self, wait: float, deadline: float | None, min_left: float) -> bool:
        return deadline is None or self._monotonic() + wait + min_left <= deadline


def _submission_fault(exc: requests.exceptions.RequestException) -> PipelineError:
    """A transport fault on a POST: only one before the request left is safe to send again."""
    if isinstance(exc, _NOT_SENT) or (isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc)):
        return ProviderUnavailable(f"could not reach the provider, nothing was sent: {_short(exc)}")
    if isinstance(exc, requests.exceptions.Timeout):
        return SubmissionUncertain(
            "no answer from the provider within the read timeout; the provider may have created the task"
        )
    return SubmissionUncertain(
        f"the answer was lost after the request was sent ({_short(exc)}); the provider may have created the task"
    )


def _submission_answer(response: requests.Response) -> _Answer:
    status = response.status_code
    if 200 <= status < 300:
        payload = _json_object(response)
        if payload is None:
            return _Answer(
                error=SubmissionUncertain(
                    f"the provider answered {status} with a body that is not a JSON object; "
                    "the provider may have created the task"
                )
            )
        task_id = _task_id_in(payload)
        if task_id is None:
            return _Answer(
                error=SubmissionUncertain(
                    f"the provider answered {status} without a usable task id; the provider may have created the task"
                )
            )
        return _Answer(value=task_id)
    refusal = _SUBMIT_REFUSALS.get(status)
    fields = _error_fields(response)
    if refusal is None or fields is None:
        code, message = fields or ("", _body_excerpt(response))
        return _Answer(
            error=SubmissionUncertain(
                f"the provider answered HTTP {status} {code}: {message}".rstrip(": ")
                + "; that does not prove the task was refused, so the provider may have created it"
            )
        )
    return _refusal(response, *fields, refusal)


def _refusal(response: requests.Response, code: str, message: str, kind: type[PipelineError]) -> _Answer:
    status = response.status_code
    detail = f"HTTP {status} {code}: {message}".strip()
    retry_after = _retry_after(response)
    if kind is ProviderAuthError:
        return _Answer(error=ProviderAuthError(f"the provider refused the API key or account ({detail})"))
    if kind is ProviderThrottled:
        throttled = ProviderThrottled(detail, retry_after=retry_after, code=code or "HTTP_429")
        return _Answer(error=throttled, retry_after=retry_after)
    return _Answer(error=kind(detail, code=code or f"HTTP_{status}"), retry_after=retry_after)


def _status_answer(task_id: str, response: requests.Response) -> _Answer:
    status = response.status_code
    if 200 <= status < 300:
        payload = _json_object(response)
        if payload is None:
            return _Answer(
                error=ProviderUnavailable(f"the provider answered {status} with a body that is not a JSON object")
            )
        return _Answer(value=parse_task(task_id, payload))
    code, message = _error_fields(response) or ("", _body_excerpt(response))
    detail = f"HTTP {status} {code}: {message}".strip()
    if status in (401, 403):
        return _Answer(error=ProviderAuthError(f"the provider refused the API key or account ({detail})"))
    if status == 404 or (status in (400, 410) and _UNKNOWN_TASK_CODE.search(code)):
        return _Answer(error=ProviderRejected(detail, code=code or f"HTTP_{status}"))
    if status == 429:
        retry_after = _retry_after(response)
        return _Answer(
            error=ProviderThrottled(detail, retry_after=retry_after, code=code or "HTTP_429"), retry_after=retry_after
        )
    # 408, 409, 425, 5xx and anything unexpected: nothing says the task is gone, so ask again later.
    return _Answer(error=ProviderUnavailable(detail, code=code or f"HTTP_{status}"), retry_after=_retry_after(response))


def _task_id_in(payload: dict[str, Any]) -> str | None:
    """The task id in either dialect (`task_id`, `data.task_id`, native Ark `id`), or None when none is usable."""
    for path in (("task_id",), ("data", "task_id"), ("id",)):
        value = _dig(payload, path)
        if value is _MISSING or value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return None
        # Blank, huge or control characters: not an id we can query, log and show; a person must look.
        if not value.strip() or len(value) > MAX_TASK_ID_LENGTH or not value.isprintable():
            return None
        # "." and "..": urllib3 removes dot segments from the status URL's path, so the task could never be asked.
        if value in (".", ".."):
            return None
        return value
    return None


def parse_task(task_id: str, payload: dict[str, Any]) -> TaskResult:
    body = payload
    # Some gateways wrap the whole task in {"code": 0, "data": {...task...}}.
    inner = payload.get("data")
    if "status" not in payload and isinstance(inner, dict) and "status" in inner:
        body = inner
    raw_status = str(body.get("status") or "UNKNOWN")[:100]
    state = _STATE_BY_STATUS.get(raw_status.strip().upper(), ProviderState.PENDING)

    video = _first_present(body, _VIDEO_URL_PATHS)
    last_frame = _first_present(body, _LAST_FRAME_URL_PATHS)
    malformed = (video is not _MISSING and not isinstance(video, str)) or (
        last_frame is not _MISSING and not isinstance(last_frame, str)
    )
    failure = None
    if state is ProviderState.FAILED:
        text = _first_present(body, _FAILURE_TEXT_PATHS)
        failure = str(text)[:1000] if text is not _MISSING else f"the provider reported {raw_status} without a reason"
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    progress = body.get("progress")
    echoed = body.get("task_id")
    return TaskResult(
        task_id=echoed if isinstance(echoed, str) and echoed else task_id,
        state=state,
        raw_status=raw_status,
        progress=str(progress)[:100] if progress is not None else None,
        video_url=video if isinstance(video, str) else None,
        last_frame_url=last_frame if isinstance(last_frame, str) else None,
        failure_reason=failure,
        usage=usage,
        malformed_url=malformed,
    )


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None for anything else: not JSON, not UTF-8, nested too deep, not an object."""
    try:
        payload = json.loads(response.content.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return payload if isinstance(payload, dict) else None


def _error_fields(response: requests.Response) -> tuple[str, str] | None:
    """(code, message) of a readable error body in either shape; None when the body says nothing we can read."""
    payload = _json_object(response)
    if payload is None:
        return None
    nested = payload.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else payload
    code, message = error.get("code"), error.get("message")
    readable = [v for v in (code, message) if isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip()]
    if not readable:
        return None
    return (str(code) if isinstance(code, str | int) else "")[:200], (str(message) if isinstance(message, str) else "")[
        :500
    ]


def _body_excerpt(response: requests.Response) -> str:
    # Not the bytes themselves: a proxy's page may echo the request, headers (and the key) included.
    return f"an unreadable body of {len(response.content)} bytes"


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After as delta-seconds (fractions allowed, as gateways send them); an HTTP date or junk is ignored."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RECORDED_RETRY_AFTER)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened before the request could reach the provider (refused, no DNS)."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
