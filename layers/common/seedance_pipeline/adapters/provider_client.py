"""Seedance HTTP client: pooled sessions, bounded retries, tolerant parsing of every gateway shape.

Two sessions because the retry rules differ: a status check (GET) is safe to repeat after any fault, but a
submission (POST) is retried only when the provider cannot have accepted it (connection refused, 429, 503).
"""

from __future__ import annotations

import json
from typing import Any

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


class CappedRetry(Retry):
    """urllib3 Retry whose Retry-After wait is capped, so a gateway asking for an hour cannot stall a Lambda."""

    max_retry_after: float = 20.0

    def parse_retry_after(self, retry_after: str) -> float:
        # Gateways send fractional seconds ("0.5"); urllib3 accepts only whole seconds or an HTTP date.
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return float(super().parse_retry_after(retry_after))

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def new(self, **kw: Any) -> CappedRetry:
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry


def _session(retry: Retry, pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _retry(*, total: int, methods: frozenset[str], statuses: frozenset[int], read: int, cap: float) -> Retry:
    retry = CappedRetry(
        total=total,
        connect=total,
        read=read,
        other=read,
        status=total,
        allowed_methods=methods,
        status_forcelist=statuses,
        backoff_factor=0.5,
        backoff_max=8.0,
        backoff_jitter=0.5,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.max_retry_after = cap
    return retry


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
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = (connect_timeout, read_timeout)
        self._query_session = _session(
            _retry(
                total=retries,
                methods=frozenset({"GET"}),
                statuses=frozenset({429, 500, 502, 503, 504}),
                read=retries,
                cap=max_retry_after,
            ),
            pool_size,
        )
        # read=0 / other=0: once the request body has left, a fault may hide an accepted (and billed) task.
        self._submit_session = _session(
            _retry(
                total=retries,
                methods=frozenset({"POST"}),
                statuses=frozenset({429, 503}),
                read=0,
                cap=max_retry_after,
            ),
            pool_size,
        )

    def __repr__(self) -> str:  # never show the key
        return f"SeedanceClient(base_url={self._base_url!r})"

    def submit(self, body: dict[str, Any]) -> str:
        """POST a generation; returns the task id."""
        url = self._base_url + GENERATIONS_PATH
        try:
            response = self._submit_session.post(url, json=body, headers=self._headers, timeout=self._timeout)
        except requests.exceptions.ConnectTimeout as exc:
            raise ProviderUnavailable(f"could not connect to the provider: {type(exc).__name__}") from exc
        except requests.exceptions.ConnectionError as exc:
            if _never_sent(exc):
                raise ProviderUnavailable(f"could not connect to the provider: {_short(exc)}") from exc
            raise SubmissionUncertain(
                f"the connection failed after the request was sent ({_short(exc)}); "
                "the provider may have created the task"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise SubmissionUncertain(
                "no answer from the provider within the read timeout; the provider may have created the task"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ProviderUnavailable(f"submission failed: {_short(exc)}") from exc
        payload = _json_or_error(response, uncertain_when_unreadable=True)
        task_id = payload.get("task_id") or _dig(payload, ("data", "task_id")) or payload.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise SubmissionUncertain("the provider answered 2xx without a task id; it may have created the task")
        return task_id

    def get(self, task_id: str) -> TaskResult:
        url = f"{self._base_url}{GENERATIONS_PATH}/{task_id}"
        try:
            response = self._query_session.get(url, headers=self._headers, timeout=self._timeout)
        except requests.exceptions.RequestException as exc:
            raise ProviderUnavailable(f"status check failed: {_short(exc)}") from exc
        payload = _json_or_error(response, uncertain_when_unreadable=False)
        return parse_task(task_id, payload)

    def close(self) -> None:
        self._query_session.close()
        self._submit_session.close()


def parse_task(task_id: str, payload: dict[str, Any]) -> TaskResult:
    body = payload
    # Some gateways wrap the whole task in {"code": 0, "data": {...task...}}.
    inner = payload.get("data")
    if "status" not in payload and isinstance(inner, dict) and "status" in inner:
        body = inner
    raw_status = str(body.get("status") or "UNKNOWN")
    state = _STATE_BY_STATUS.get(raw_status.strip().upper(), ProviderState.PENDING)

    video = _first_present(body, _VIDEO_URL_PATHS)
    last_frame = _first_present(body, _LAST_FRAME_URL_PATHS)
    malformed = (video is not _MISSING and not isinstance(video, str)) or (
        last_frame is not _MISSING and not isinstance(last_frame, str)
    )
    failure = None
    if state is ProviderState.FAILED:
        text = _first_present(body, _FAILURE_TEXT_PATHS)
        failure = str(text) if text is not _MISSING else f"the provider reported {raw_status} without a reason"
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    progress = body.get("progress")
    return TaskResult(
        task_id=str(body.get("task_id") or task_id),
        state=state,
        raw_status=raw_status,
        progress=str(progress) if progress is not None else None,
        video_url=video if isinstance(video, str) else None,
        last_frame_url=last_frame if isinstance(last_frame, str) else None,
        failure_reason=failure,
        usage=usage,
        malformed_url=malformed,
    )


def _json_or_error(response: requests.Response, *, uncertain_when_unreadable: bool) -> dict[str, Any]:
    if 200 <= response.status_code < 300:
        try:
            payload = response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            message = f"the provider answered {response.status_code} with a body that is not JSON"
            if uncertain_when_unreadable:
                raise SubmissionUncertain(message + "; the provider may have created the task") from exc
            raise ProviderUnavailable(message) from exc
        if not isinstance(payload, dict):
            raise ProviderUnavailable("the provider answered with JSON that is not an object")
        return payload
    raise error_for_status(response)


def error_for_status(response: requests.Response) -> PipelineError:
    code, message = _error_fields(response)
    status = response.status_code
    detail = f"HTTP {status} {code}: {message}".strip()
    if status in (401, 403):
        return ProviderAuthError(f"the provider refused the API key or account ({detail})")
    if status == 429:
        retry_after = _retry_after(response)
        return ProviderThrottled(detail, retry_after=retry_after, code=code or "HTTP_429")
    if status >= 500:
        return ProviderUnavailable(detail, code=code or f"HTTP_{status}")
    return ProviderRejected(detail, code=code or f"HTTP_{status}")


def _error_fields(response: requests.Response) -> tuple[str, str]:
    try:
        payload = response.json()
    except ValueError:
        return "", (response.text or "")[:300]
    if not isinstance(payload, dict):
        return "", str(payload)[:300]
    nested = payload.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else payload
    return str(error.get("code") or ""), str(error.get("message") or "")[:500]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened before the request could reach the provider (refused, no DNS)."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
