"""Task lifecycle: the tasks, the model's concurrency limit and fault injection (knobs.py holds the knobs).

Time drives everything: a task's state is a pure function of the clock, its submit time, the knobs captured
when it was submitted, the model's concurrency limit and whether its render has finished. `Simulator.advance`
replays the start/finish events that have happened since it last ran, in time order, so the recorded
start/finish times and the peak concurrency are exact no matter how often clients poll.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .dimensions import frame_count, output_size
from .errors import ApiError, format_retry_after
from .input_images import InputImage
from .knobs import Counters, Knobs
from .render import RenderCache, RenderResult, RenderSpec
from .task_states import (
    AUDIO_MODERATION_REASON,
    CANCELLED,
    EXPIRED,
    FAILURE,
    IN_PROGRESS,
    MODERATION_REASON,
    NOT_START,
    QUEUED,
    RANDOM_SEED_MAX,
    RENDER_FAILED_REASON,
    SUCCESS,
    TERMINAL,
)
from .validation import GenerationRequest


@dataclass(eq=False)
class TaskRecord:
    """One accepted task. `status` is current as of the last `Simulator.advance` (every accessor advances)."""

    task_id: str
    request: GenerationRequest
    body: dict[str, Any]  # the submit body as received, data URLs shortened
    image_sha256: str
    image_width: int
    image_height: int
    width: int  # output video size
    height: int
    frames: int
    submitted_at: float
    not_start_seconds: float
    queue_seconds: float
    run_seconds: float
    planned_failure: str | None  # set at submission from fail_next / failure_reason
    failure_code: str | None = None  # the Ark error code of a planned failure, when not output video moderation
    seed: int = 0  # the caller's seed, or the one drawn for it
    expires_at: float | None = None  # when an unfinished task becomes EXPIRED (native Ark tasks only)
    status: str = NOT_START
    started_at: float | None = None
    finished_at: float | None = None
    # Wall-clock moment the simulator made the task terminal (finished_at is the replayed, exact one): with a
    # callback URL the ticker keeps the two within a tick, so "provider done -> result stored" can be measured.
    terminal_at: float | None = None
    fail_reason: str = ""
    render: Future[RenderResult] | None = field(default=None, repr=False)
    render_done_at: float | None = None
    render_error: BaseException | None = None
    result: RenderResult | None = None

    @property
    def ready_at(self) -> float:
        """Earliest moment the task may start running."""
        return self.submitted_at + self.not_start_seconds + self.queue_seconds

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def progress(self, now: float) -> str:
        if self.status in TERMINAL:
            return "100%"
        if self.status != IN_PROGRESS or self.started_at is None:
            return "0%"
        if self.run_seconds <= 0:
            return "99%"
        # Never 100% before the task is really done (it may still be waiting for its render).
        return f"{min(99, int(100 * (now - self.started_at) / self.run_seconds))}%"

    @property
    def updated_at(self) -> float:
        return max(t for t in (self.submitted_at, self.started_at, self.finished_at) if t is not None)

    @property
    def usage_tokens(self) -> int:
        # The provider bills video tokens as width * height * fps * seconds / 1024; a frame count is fps * seconds.
        frames = self.request.frames if self.request.frames is not None else 24 * self.request.duration
        return self.width * self.height * frames // 1024


def new_task_id(now: float) -> str:
    """`cgt-<UTC timestamp>-<5 lowercase letters>`, the provider's task id format."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5))
    return f"cgt-{stamp}-{suffix}"


class Simulator:
    """Tasks, the model's concurrency limit and fault injection, behind one lock."""

    def __init__(self, knobs: Knobs, counters: Counters, renders: RenderCache) -> None:
        self.knobs = knobs
        self.counters = counters
        self.renders = renders
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskRecord] = {}
        self._waiting: list[TaskRecord] = []  # submit order
        self._running: list[TaskRecord] = []
        self._clock = 0.0  # time of the last event replayed by advance()
        # Told of every status change, under the lock (callbacks.py queues the provider callbacks from it).
        self.on_change: Callable[[TaskRecord], None] | None = None

    # -- faults --------------------------------------------------------------------------------------------

    def take_fault(self, method: str) -> str | None:
        """Consume one pending fault for this API call, if any targets its method. Most disruptive first."""
        with self._lock:
            k = self.knobs
            if k.fault_methods != "both" and k.fault_methods != method:
                return None
            for kind, attr in (
                ("drop", "drop_connections_next"),
                ("server_error", "server_errors_next"),
                ("rate_limit", "rate_limit_next"),
                ("malformed_json", "malformed_json_next"),
                ("lose_answer", "lose_answers_next"),
            ):
                if kind == "lose_answer" and method != "POST":
                    continue
                pending = getattr(k, attr)
                if pending > 0:
                    setattr(k, attr, pending - 1)
                    return kind
            return None

    # -- tasks -----------------------------------------------------------------------------------------------

    def create_task(
        self, request: GenerationRequest, body: dict[str, Any], image: InputImage, last_image: InputImage | None = None
    ) -> TaskRecord:
        """Accept a validated request: enforce the queue quota, record the task and start its render."""
        width, height = output_size(request.resolution, request.ratio, image.width, image.height)
        with self._lock:
            now = time.time()
            self.advance(now)
            k = self.knobs
            if k.max_queued is not None and len(self._waiting) >= k.max_queued:
                retry = k.retry_after if k.retry_after is not None else 1.0
                raise ApiError(
                    429,
                    "QuotaExceeded",
                    f"The number of queued tasks has reached the limit of your account ({k.max_queued}). "
                    "Please try again later.",
                    headers={"Retry-After": format_retry_after(retry)},
                )
            planned_failure: str | None = None
            failure_code: str | None = None
            if k.output_audio_sensitive_next > 0:
                k.output_audio_sensitive_next -= 1
                planned_failure, failure_code = AUDIO_MODERATION_REASON, "OutputAudioSensitiveContentDetected"
            elif k.fail_next > 0:
                k.fail_next -= 1
                planned_failure = k.failure_reason or MODERATION_REASON
            elif k.failure_reason:
                planned_failure = k.failure_reason
            task_id = new_task_id(now)
            while task_id in self._tasks:
                task_id = new_task_id(now)
            # A flex task is cheaper because it waits for spare capacity and runs slower.
            tier = k.flex_multiplier if request.service_tier == "flex" else 1.0
            expires_at = None
            if request.execution_expires_after is not None:
                expires_at = now + request.execution_expires_after * k.execution_expiry_scale
            seed = request.seed
            if seed is None or seed == -1:
                seed = secrets.randbelow(RANDOM_SEED_MAX + 1)
            task = TaskRecord(
                task_id=task_id,
                request=request,
                body=body,
                image_sha256=image.sha256,
                image_width=image.width,
                image_height=image.height,
                width=width,
                height=height,
                frames=request.frames if request.frames is not None else frame_count(request.duration),
                submitted_at=now,
                not_start_seconds=max(0.0, k.not_start_seconds),
                queue_seconds=max(0.0, k.queue_seconds) * tier,
                run_seconds=max(0.0, k.run_seconds) * tier,
                planned_failure=planned_failure,
                failure_code=failure_code,
                seed=seed,
                expires_at=expires_at,
                status=NOT_START if k.not_start_seconds > 0 else QUEUED,
            )
            spec = RenderSpec(
                width=width,
                height=height,
                frames=task.frames,
                camerafixed=request.camerafixed,
                watermark=request.watermark,
                last_frame=request.return_last_frame,
                video=k.video_body_factory is None,  # a test serving its own body does not need the MP4
                end_image_sha256=last_image.sha256 if last_image is not None else None,
                audio=request.with_audio,
                reference=hashlib.sha256("\n".join(request.reference_media).encode()).hexdigest()
                if request.reference_media
                else None,
            )
            needs_render = planned_failure is None and (spec.video or spec.last_frame)
            if not needs_render:
                task.render_done_at = now
            self._tasks[task_id] = task
            self._waiting.append(task)
            self.counters.incr("tasks_created")
            self._changed(task)
            self.advance(now)
        if needs_render:
            # Start rendering straight away (outside the lock: a cache hit may complete synchronously).
            task.render = self.renders.submit(
                image.data, image.sha256, spec, last_image.data if last_image is not None else None
            )
            task.render.add_done_callback(lambda f: self._render_done(task, f))
        return task

    def _render_done(self, task: TaskRecord, future: Future[RenderResult]) -> None:
        with self._lock:
            # Stamped under the lock, so it is never earlier than a moment advance() already replayed.
            task.render_done_at = time.time()
            if future.cancelled():
                task.render_error = RuntimeError("render cancelled")
            elif future.exception() is not None:
                task.render_error = future.exception()
            else:
                task.result = future.result()

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            self.advance(time.time())
            return self._tasks.get(task_id)

    def all_tasks(self) -> list[TaskRecord]:
        with self._lock:
            self.advance(time.time())
            return list(self._tasks.values())

    def delete(self, task_id: str) -> str | None:
        """The native Ark DELETE: cancel a waiting task, or forget a finished one. None for an unknown id."""
        with self._lock:
            now = time.time()
            self.advance(now)
            task = self._tasks.get(task_id)
            if task is None:
                return None
            if task.status == IN_PROGRESS:
                raise ApiError(
                    400,
                    "TaskNotCancellable",
                    f"The task {task_id} is running and cannot be cancelled; only a queued task can be.",
                    param="id",
                )
            if task.status == CANCELLED:
                # The platform keeps a cancelled task's record: it can be neither cancelled again nor deleted.
                raise ApiError(
                    400,
                    "TaskNotCancellable",
                    f"The task {task_id} is cancelled; a cancelled task cannot be deleted.",
                    param="id",
                )
            if not task.terminal:
                self._waiting.remove(task)
                task.status, task.finished_at = CANCELLED, now
                task.fail_reason = "The task was cancelled before it started."
                self.counters.incr("cancelled")
                self._changed(task)
                return "cancelled"
            del self._tasks[task_id]
            self.counters.incr("deleted")
            return "deleted"

    def has_live_callbacks(self) -> bool:
        """Whether some unfinished task has a callback URL, i.e. whether its changes must happen in real time."""
        with self._lock:
            return any(t.request.callback_url for t in (*self._waiting, *self._running))

    def reset(self) -> None:
        with self._lock:
            self._tasks.clear()
            self._waiting.clear()
            self._running.clear()

    # -- the clock ----------------------------------------------------------------------------------------------

    def _finish_due(self, task: TaskRecord) -> float:
        if self.knobs.never_finish:
            return math.inf
        assert task.started_at is not None
        due = task.started_at + task.run_seconds
        if task.planned_failure is not None:
            return due
        if task.render_done_at is None:
            return math.inf  # success needs the video
        return max(due, task.render_done_at)

    def advance(self, now: float) -> None:
        """Replay every start and finish that has happened by `now`, in time order."""
        with self._lock:
            while True:
                finish_at, finishing = math.inf, None
                for task in self._running:
                    due = self._finish_due(task)
                    if due < finish_at:
                        finish_at, finishing = due, task
                expire_at, expiring = math.inf, None
                for task in (*self._waiting, *self._running):
                    if task.expires_at is not None and task.expires_at < expire_at:
                        expire_at, expiring = task.expires_at, task
                start_at, starting = math.inf, None
                if self._waiting and len(self._running) < self.knobs.max_running:
                    # FIFO among the tasks already eligible; if none is, the first to become eligible.
                    eligible = [t for t in self._waiting if t.ready_at <= self._clock]
                    starting = eligible[0] if eligible else min(self._waiting, key=lambda t: t.ready_at)
                    start_at = starting.ready_at
                # A knob change can make an event "due" in the past; it happens no earlier than the last one.
                finish_at, start_at = max(finish_at, self._clock), max(start_at, self._clock)
                expire_at = max(expire_at, self._clock)
                if min(finish_at, start_at, expire_at) > now:
                    break
                # On a tie a finish beats an expiry, and an expiry beats a start (a start would be pointless).
                if finishing is not None and finish_at <= start_at and finish_at <= expire_at:
                    self._finish(finishing, finish_at)
                    self._clock = finish_at
                elif expiring is not None and expire_at <= start_at:
                    self._expire(expiring, expire_at)
                    self._clock = expire_at
                else:
                    assert starting is not None
                    self._start(starting, start_at)
                    self._clock = start_at
            for task in self._waiting:
                status = NOT_START if now < task.submitted_at + task.not_start_seconds else QUEUED
                if status != task.status:
                    task.status = status
                    self._changed(task)

    def _changed(self, task: TaskRecord) -> None:
        if task.terminal and task.terminal_at is None:
            task.terminal_at = time.time()
        if self.on_change is not None:
            self.on_change(task)

    def _start(self, task: TaskRecord, at: float) -> None:
        self._waiting.remove(task)
        self._running.append(task)
        if task.status == NOT_START:
            # Replayed after the fact it may skip QUEUED; the task was queued, and callbacks say so.
            task.status = QUEUED
            self._changed(task)
        task.status = IN_PROGRESS
        task.started_at = at
        self.counters.note_running(len(self._running))
        self._changed(task)

    def _expire(self, task: TaskRecord, at: float) -> None:
        (self._running if task in self._running else self._waiting).remove(task)
        task.status, task.finished_at = EXPIRED, at
        task.fail_reason = (
            f"The task did not finish within execution_expires_after ({task.request.execution_expires_after} s)."
        )
        self.counters.incr("expired")
        self._changed(task)

    def _finish(self, task: TaskRecord, at: float) -> None:
        self._running.remove(task)
        task.finished_at = at
        if task.planned_failure is not None:
            task.status, task.fail_reason = FAILURE, task.planned_failure
        elif task.render_error is not None:
            task.status, task.fail_reason = FAILURE, RENDER_FAILED_REASON
        else:
            task.status = SUCCESS
        self._changed(task)
