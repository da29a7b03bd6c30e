"""What the provider's answers mean: a submission's, whose misreading could pay for a task twice, and a status
check's, list's or cancel's, which are safe to ask again.

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
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from seedance_pipeline.adapters.provider_dialect import Dialect
from seedance_pipeline.errors import (
    PipelineError,
    ProviderAuthError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
    SubmissionUncertain,
)

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


class Answer:
    """One attempt's outcome: a value, or an error and how long the provider asked us to wait before the next."""

    __slots__ = ("error", "retry_after", "value")

    def __init__(self, value: Any = None, error: PipelineError | None = None, retry_after: float | None = None):
        self.value = value
        self.error = error
        self.retry_after = retry_after


def submission_fault(exc: requests.exceptions.RequestException) -> PipelineError:
    """A transport fault on a POST: only one before the request left is safe to send again."""
    if isinstance(exc, _NOT_SENT) or (isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc)):
        return ProviderUnavailable(f"could not reach the provider, nothing was sent: {short_text(exc)}")
    if isinstance(exc, requests.exceptions.Timeout):
        return SubmissionUncertain(
            "no answer from the provider within the read timeout; the provider may have created the task"
        )
    return SubmissionUncertain(
        f"the answer was lost after the request was sent ({short_text(exc)}); the provider may have created the task"
    )


def submission_answer(response: requests.Response, dialect: Dialect) -> Answer:
    status = response.status_code
    if 200 <= status < 300:
        payload = json_object(response)
        if payload is None:
            return Answer(
                error=SubmissionUncertain(
                    f"the provider answered {status} with a body that is not a JSON object; "
                    "the provider may have created the task"
                )
            )
        task_id = dialect.created_task_id(payload)
        if task_id is None:
            return Answer(
                error=SubmissionUncertain(
                    f"the provider answered {status} without a usable task id; the provider may have created the task"
                )
            )
        return Answer(value=task_id)
    refusal = _SUBMIT_REFUSALS.get(status)
    fields = error_fields(response)
    if refusal is None or fields is None:
        code, message = fields or ("", body_excerpt(response))
        return Answer(
            error=SubmissionUncertain(
                f"the provider answered HTTP {status} {code}: {message}".rstrip(": ")
                + "; that does not prove the task was refused, so the provider may have created it"
            )
        )
    return _refusal(response, *fields, refusal)


def _refusal(response: requests.Response, code: str, message: str, kind: type[PipelineError]) -> Answer:
    status = response.status_code
    detail = f"HTTP {status} {code}: {message}".strip()
    retry_after = _retry_after(response)
    if kind is ProviderAuthError:
        return Answer(error=ProviderAuthError(f"the provider refused the API key or account ({detail})"))
    if kind is ProviderThrottled:
        throttled = ProviderThrottled(detail, retry_after=retry_after, code=code or "HTTP_429")
        return Answer(error=throttled, retry_after=retry_after)
    return Answer(error=kind(detail, code=code or f"HTTP_{status}"), retry_after=retry_after)


def status_answer(task_id: str, response: requests.Response, dialect: Dialect) -> Answer:
    status = response.status_code
    if 200 <= status < 300:
        payload = json_object(response)
        if payload is None:
            return Answer(
                error=ProviderUnavailable(f"the provider answered {status} with a body that is not a JSON object")
            )
        return Answer(value=dialect.parse_task(task_id, payload))
    return status_error(response)


def status_error(response: requests.Response) -> Answer:
    """A non-2xx answer to a call that is safe to repeat (a status check, a list, a cancel)."""
    status = response.status_code
    code, message = error_fields(response) or ("", body_excerpt(response))
    detail = f"HTTP {status} {code}: {message}".strip()
    if status in (401, 403):
        return Answer(error=ProviderAuthError(f"the provider refused the API key or account ({detail})"))
    if status == 404 or (status in (400, 410) and _UNKNOWN_TASK_CODE.search(code)):
        return Answer(error=ProviderRejected(detail, code=code or f"HTTP_{status}"))
    if status == 429:
        retry_after = _retry_after(response)
        return Answer(
            error=ProviderThrottled(detail, retry_after=retry_after, code=code or "HTTP_429"), retry_after=retry_after
        )
    # 408, 409, 425, 5xx and anything unexpected: nothing says the task is gone, so ask again later.
    return Answer(error=ProviderUnavailable(detail, code=code or f"HTTP_{status}"), retry_after=_retry_after(response))


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None for anything else: not JSON, not UTF-8, nested too deep, not an object."""
    try:
        payload = json.loads(response.content.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return payload if isinstance(payload, dict) else None


def error_fields(response: requests.Response) -> tuple[str, str] | None:
    """(code, message) of a readable error body in either shape; None when the body says nothing we can read."""
    payload = json_object(response)
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


def body_excerpt(response: requests.Response) -> str:
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


def short_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
