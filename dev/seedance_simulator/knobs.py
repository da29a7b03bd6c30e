"""The simulator's test knobs (behaviour switches a test flips while the server runs) and its counters."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

RESPONSE_SHAPES = (
    "documented",
    "outputs_list",
    "result_url",
    "content_video_url",
    "nested_data",
    "top_video_url",
    "top_url",
    "lowercase_status",
    "fail_reason_url",
    "missing_url",
    "non_string_url",
)
ERROR_SHAPES = ("nested", "flat")
FAULT_METHODS = ("both", "POST", "GET")
FAULT_KINDS = ("drop", "server_error", "rate_limit", "malformed_json", "lose_answer")

# Called with the task's TaskRecord (knobs sits below tasks.py, which imports it, so the type is not named here).
VideoBodyFactory = Callable[[Any], tuple[int, Iterable[bytes]]]


@dataclass
class Knobs:
    """Behaviour switches for tests. Mutable while the server runs; every request reads the current values.

    Timing knobs (not_start/queue/run seconds) are captured per task at submission; `never_finish`,
    `max_running` and the fault counters act live.
    """

    api_key: str = "test-key"
    # Timing
    latency_seconds: float = 0.0  # sleep before every API response (submit and query, not result downloads)
    not_start_seconds: float = 0.0  # time a new task reports NOT_START before QUEUED
    queue_seconds: float = 0.0  # further time QUEUED before it may run (capacity permitting)
    run_seconds: float = 2.0  # time IN_PROGRESS before it may finish (it also waits for its render)
    never_finish: bool = False  # running tasks stay IN_PROGRESS until this is cleared
    # Native Ark dialect: simulator seconds per second of `execution_expires_after` (0.01: the 3600 s minimum
    # expires after 36 s, a 2-hour job age after 72 s: long enough for a render on a loaded machine; tests of
    # expiry set their own), and how much longer a `flex` task queues and runs.
    execution_expiry_scale: float = 0.01
    flex_multiplier: float = 3.0
    # Outcomes
    failure_reason: str | None = None  # when set, every new task ends FAILURE with this reason
    fail_next: int = 0  # the next N new tasks end FAILURE (with failure_reason, else a moderation reason)
    # Faults on the API endpoints, each consumed one call at a time, for the methods in fault_methods
    fault_methods: str = "both"  # "both", "POST" (submit only) or "GET" (query only)
    rate_limit_next: int = 0  # 429 ModelAccountRpmRateLimitExceeded
    retry_after: float | None = None  # Retry-After on those 429s (None: no header)
    server_errors_next: int = 0
    server_error_status: int = 500  # 500, 502 or 503
    drop_connections_next: int = 0  # close the socket without answering
    malformed_json_next: int = 0  # 200 with a truncated, non-JSON body
    # The next N creates are accepted (the task exists and is billed) and the connection then closes without an
    # answer: the lost answer a client must not resend, and the native API lets it find in the task list.
    lose_answers_next: int = 0
    # Response formats
    response_shape: str = "documented"  # where the query answer puts the video URL; see RESPONSE_SHAPES
    error_shape: str = "nested"  # "nested" {"error": {...}} or "flat" {"code", "message"}
    status_override: str | None = None  # queries report this status verbatim (UNKNOWN, SUBMITTED, cancelled...)
    # Result downloads
    expire_results: bool = False  # result URLs answer 403 AccessDenied (expired)
    result_status_override: int | None = None  # result URLs answer this status instead
    video_body_factory: VideoBodyFactory | None = None  # serve this body instead of the rendered MP4
    # Native Ark moderation and activation: the next N creates are refused with the platform's 400 for input
    # text, an input image, or an input image showing a real person (`.PrivacyInformation`); the next N tasks fail
    # with the output audio code (output video: fail_next); a model listed here exists but is not activated for
    # the account (404 ModelNotOpen).
    input_text_sensitive_next: int = 0
    input_image_sensitive_next: int = 0
    input_image_privacy_next: int = 0
    output_audio_sensitive_next: int = 0
    models_not_open: frozenset[str] = frozenset()
    # Account limits
    max_running: int = 10
    max_queued: int | None = None  # waiting tasks allowed before a submit gets 429 QuotaExceeded
    # Provider callbacks (callbacks.py): a POST of the task's status JSON to its callback URL on every status change
    unified_callback_field: str = "callback_url"  # the gateway's body field carrying the URL ("": it has none)
    callback_drop: int = 0  # the next N callbacks are never sent
    callback_duplicate: int = 0  # each callback is sent N extra times
    callback_delay_seconds: float = 0.0  # each callback waits this long before it is sent
    callback_reorder: bool = False  # a task's callbacks are held until it ends, then sent newest state first
    callback_forge: bool = False  # each callback comes with forged ones (see callbacks.py)
    callback_timeout_seconds: float = 5.0  # per attempt
    callback_retry_seconds: float = 0.25  # back-off before the first of up to 3 retries, doubling each time

    def __setattr__(self, name: str, value: Any) -> None:
        # Fail loudly on a typo in a test instead of silently running the default behaviour.
        allowed = {"response_shape": RESPONSE_SHAPES, "error_shape": ERROR_SHAPES, "fault_methods": FAULT_METHODS}
        if name in allowed and value not in allowed[name]:
            raise ValueError(f"{name} must be one of {allowed[name]}, got {value!r}")
        if name in ("execution_expiry_scale", "flex_multiplier", "callback_timeout_seconds") and not float(value) > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
        if name == "server_error_status" and not 500 <= int(value) <= 599:
            raise ValueError(f"server_error_status must be a 5xx status, got {value!r}")
        super().__setattr__(name, value)

    def copy(self) -> Knobs:
        return dataclasses.replace(self)

    def restore(self, other: Knobs) -> None:
        """Take every value from `other`, in place, so references to this object stay valid."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))


class Counters:
    """What the simulator has seen, for assertions. Increments are thread-safe; reads are plain attributes."""

    submit: int
    query: int
    download: int
    rate_limited: int  # every 429 sent, whatever its code
    dropped: int  # connections closed without an answer (drop_connections_next)
    tasks_created: int
    listed: int  # native Ark list calls
    deletes: int  # native Ark DELETE calls, whatever their outcome
    cancelled: int  # queued tasks cancelled by a DELETE
    deleted: int  # finished task records removed by a DELETE
    expired: int  # tasks that passed their execution_expires_after
    peak_running: int  # most tasks IN_PROGRESS at the same time
    request_bodies: list[Any]  # submit bodies received, data URLs shortened
    status_codes: dict[int, int]  # responses sent, by HTTP status
    callbacks_sent: int  # genuine callback POSTs made, every attempt and duplicate counted
    callbacks_failed: int  # genuine callbacks given up on after the last retry
    callbacks_dropped: int  # callbacks the callback_drop knob swallowed
    callbacks_forged: int  # forged callback POSTs made
    callback_status_codes: dict[int, int]  # the receivers' answers to every callback POST, 0 for no answer

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.submit = self.query = self.download = 0
            self.rate_limited = self.dropped = self.tasks_created = self.peak_running = 0
            self.listed = self.deletes = self.cancelled = self.deleted = self.expired = 0
            self.request_bodies = []
            self.status_codes = {}
            self.callbacks_sent = self.callbacks_failed = self.callbacks_dropped = self.callbacks_forged = 0
            self.callback_status_codes = {}

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def record_body(self, body: Any) -> None:
        with self._lock:
            self.request_bodies.append(body)

    def record_status(self, status: int) -> None:
        with self._lock:
            self.status_codes[status] = self.status_codes.get(status, 0) + 1
            if status == 429:
                self.rate_limited += 1

    def record_callback_answer(self, status: int) -> None:
        with self._lock:
            self.callback_status_codes[status] = self.callback_status_codes.get(status, 0) + 1

    def note_running(self, running: int) -> None:
        with self._lock:
            self.peak_running = max(self.peak_running, running)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "submit": self.submit,
                "query": self.query,
                "download": self.download,
                "rate_limited": self.rate_limited,
                "dropped": self.dropped,
                "tasks_created": self.tasks_created,
                "listed": self.listed,
                "deletes": self.deletes,
                "cancelled": self.cancelled,
                "deleted": self.deleted,
                "expired": self.expired,
                "peak_running": self.peak_running,
                "request_bodies": list(self.request_bodies),
                "status_codes": dict(self.status_codes),
                "callbacks_sent": self.callbacks_sent,
                "callbacks_failed": self.callbacks_failed,
                "callbacks_dropped": self.callbacks_dropped,
                "callbacks_forged": self.callbacks_forged,
                "callback_status_codes": dict(self.callback_status_codes),
            }
