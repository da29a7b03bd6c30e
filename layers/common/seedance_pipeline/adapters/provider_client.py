"""Seedance HTTP client: one pooled session, retries budgeted against a deadline, tolerant parsing of every answer.

The policy below is the dialects' common ground; what differs between the unified gateway format and the native Ark
v3 API (paths, where the task id is, how a task reads) is a small dialect object (unified_dialect, ark_dialect).
What each answer means (only a clear refusal proves a submission made no task) is provider_answers.

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

import random
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from seedance_pipeline.adapters.ark_dialect import LIST_MAX_PAGES, LIST_PAGE_SIZE, ArkDialect, matches, oldest_created
from seedance_pipeline.adapters.provider_answers import (
    Answer,
    body_excerpt,
    error_fields,
    json_object,
    short_text,
    status_answer,
    status_error,
    submission_answer,
    submission_fault,
)
from seedance_pipeline.adapters.provider_dialect import Dialect
from seedance_pipeline.adapters.unified_dialect import UnifiedDialect, parse_task
from seedance_pipeline.errors import (
    PipelineError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
)
from seedance_pipeline.models import TaskResult

__all__ = ["Dialect", "ProviderClient", "SeedanceClient", "ark_client", "parse_task"]


# An attempt needs at least this long to connect and be answered; with less left it is not started. A POST cut
# short ends uncertain (a person must look), so it asks for more room than a GET, which is simply asked again.
MIN_ATTEMPT_SECONDS = 1.0
MIN_SUBMIT_ATTEMPT_SECONDS = 5.0
_RETRYABLE = (ProviderThrottled, ProviderUnavailable)


class ProviderClient:
    """One dialect over the shared HTTP policy."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        dialect: Dialect | None = None,
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
        self.dialect: Dialect = dialect or UnifiedDialect()
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
        return f"{type(self).__name__}(base_url={self._base_url!r}, dialect={self.dialect.name!r})"

    def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str:
        """POST a generation; returns the task id. `deadline` is a time.monotonic() value (see the module doc)."""
        url = self._base_url + self.dialect.create_path()
        dialect = self.dialect

        def attempt(timeout: tuple[float, float]) -> Answer:
            try:
                response = self._session.post(
                    url, json=body, headers=self._headers, timeout=timeout, allow_redirects=False
                )
            except requests.exceptions.RequestException as exc:
                return Answer(error=submission_fault(exc))
            return submission_answer(response, dialect)

        task_id: str = self._call(
            attempt, deadline, min_left=self._min_submit_seconds, out_of_time="the submission was not sent"
        )
        return task_id

    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
        """GET a task's status. `deadline` is a time.monotonic() value (see the module doc)."""
        url = self._base_url + self.dialect.task_path(task_id)
        dialect = self.dialect

        def attempt(timeout: tuple[float, float]) -> Answer:
            try:
                response = self._session.get(url, headers=self._headers, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                return Answer(error=ProviderUnavailable(f"status check failed: {short_text(exc)}"))
            return status_answer(task_id, response, dialect)

        result: TaskResult = self._call(
            attempt, deadline, min_left=MIN_ATTEMPT_SECONDS, out_of_time="the status check was not made"
        )
        return result

    def find_task(
        self, body: dict[str, Any], *, since: float, until: float, deadline: float | None = None
    ) -> str | None:
        """The id of the one listed task that `body` created between `since` and `until` (unix seconds), or None:
        the dialect has no list, nothing matches, several do, or LIST_MAX_PAGES pages do not reach back to `since`.

        Pages come newest first; the walk stops at the first page that is not full or that reaches past `since`,
        so a busy account (hundreds of tasks a minute) still gets an answer instead of an uncertain job.
        """
        dialect = self.dialect
        if not isinstance(dialect, ArkDialect):
            return None
        found: list[dict[str, Any]] = []
        for page_num in range(1, LIST_MAX_PAGES + 1):
            items = self._list_page(dialect, body, page_num, deadline)
            found += [item for item in items if matches(item, body, since=since, until=until)]
            if len(found) > 1:
                return None
            oldest = oldest_created(items)
            if len(items) < LIST_PAGE_SIZE or (oldest is not None and oldest < since):
                break  # the window is covered: the next page holds only older tasks
        else:
            return None  # the pages we may read did not reach back to the window's start: a match could hide there
        if len(found) != 1:
            return None
        task_id: str = found[0]["id"]
        return task_id

    def _list_page(self, dialect: ArkDialect, body: dict[str, Any], page_num: int, deadline: float | None) -> list[Any]:
        url = self._base_url + dialect.list_path()
        params = {
            "page_num": str(page_num),
            "page_size": str(LIST_PAGE_SIZE),
            "filter.model": str(body.get("model", "")),
        }

        def attempt(timeout: tuple[float, float]) -> Answer:
            try:
                response = self._session.get(url, params=params, headers=self._headers, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                return Answer(error=ProviderUnavailable(f"the task list could not be read: {short_text(exc)}"))
            if not 200 <= response.status_code < 300:
                return status_error(response)
            payload = json_object(response)
            items = dialect.list_items(payload) if payload is not None else None
            if items is None:
                return Answer(error=ProviderUnavailable("the task list answer is not a list of tasks"))
            return Answer(value=items)

        items: list[Any] = self._call(attempt, deadline, min_left=MIN_ATTEMPT_SECONDS, out_of_time="no look-up made")
        return items

    def cancel(self, task_id: str, *, deadline: float | None = None) -> bool:
        """Cancel a queued task (DELETE); True when the provider accepted. False where the dialect cannot cancel.
        Raises PipelineError when the provider refused (a running task cannot be cancelled) or did not answer."""
        if not self.dialect.can_cancel:
            return False
        url = self._base_url + self.dialect.task_path(task_id)

        def attempt(timeout: tuple[float, float]) -> Answer:
            try:
                response = self._session.delete(url, headers=self._headers, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                return Answer(error=ProviderUnavailable(f"the cancel request failed: {short_text(exc)}"))
            if 200 <= response.status_code < 300:
                return Answer(value=True)
            if 400 <= response.status_code < 500 and response.status_code != 429:
                # A running or finished task cannot be cancelled: asking again would not change that.
                code, message = error_fields(response) or ("", body_excerpt(response))
                detail = f"HTTP {response.status_code} {code}: {message}".strip()
                return Answer(error=ProviderRejected(detail, code=code or f"HTTP_{response.status_code}"))
            return status_error(response)

        cancelled: bool = self._call(attempt, deadline, min_left=MIN_ATTEMPT_SECONDS, out_of_time="no cancel sent")
        return cancelled

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        attempt: Callable[[tuple[float, float]], Answer],
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


class SeedanceClient(ProviderClient):
    """The unified gateway dialect (the default), under the name the tools and tests have always used."""


def ark_client(base_url: str, api_key: str, **options: Any) -> ProviderClient:
    return ProviderClient(base_url, api_key, dialect=ArkDialect(), **options)
