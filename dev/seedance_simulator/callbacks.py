"""Provider callbacks: a POST of a task's status JSON to its callback URL on every status change.

A task gets callbacks when it was created with a callback URL (Ark: `callback_url`; the gateway: the body field
`Knobs.unified_callback_field` names). The body is exactly what a GET of the task answers in the task's own
dialect at the moment of the change. Task state is otherwise advanced lazily, when a request asks; a ticker
advances it in real time while some unfinished task has a callback URL, so a callback leaves within a tick of
the change (and sleeps when there is none).

Delivery, from a few worker threads: a task's callbacks go out one at a time in order, tasks in parallel; each
attempt waits `callback_timeout_seconds` (5 s) for an answer, and a non-2xx answer or none is retried up to
3 times with a doubling back-off: every gateway callback, but of an Ark task's only a succeeded or failed one,
as the platform documents; an Ark task's cancellation is not called back. The knobs that break it as real
networks and attackers do:

    callback_drop           the next N callbacks are never sent
    callback_duplicate      each callback is sent N extra times
    callback_delay_seconds  each callback is sent this long after its change
    callback_reorder        a task's callbacks are held until it ends, then sent newest state first
    callback_forge          each callback is followed by forged ones, sent once each without retries: its URL
                            with a tampered `token`, its URL with another task's `job` (and this token), and,
                            while the task has not ended, a "succeeded" claim to the genuine URL

Callback URLs carry tokens: they are never logged.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .ark_listing import ARK_STATUS
from .knobs import Counters, Knobs
from .task_states import SUCCESS
from .tasks import Simulator, TaskRecord

log = logging.getLogger("seedance_simulator")

TICK_SECONDS = 0.05
RETRIES = 3
ARK_CALLBACK_STATUSES = ("queued", "running", "succeeded", "failed", "expired")
ARK_RETRIED_STATUSES = ("succeeded", "failed")
WORKERS = 4
STOP_WAIT_SECONDS = 2.0  # how long stop() waits for a worker stuck in a send; they are daemon threads
USER_AGENT = "SeedanceSimulator/1.0 (callback)"

Payload = Callable[[TaskRecord, str], dict[str, Any]]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer that is not 2xx, not a new place to POST to.
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> urllib.request.Request | None:
        return None


# No proxies from the environment: receivers are usually on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass(frozen=True)
class Delivery:
    task_id: str
    url: str
    body: bytes
    due: float  # wall-clock time it may leave
    forged: bool = False
    retries: int = 0  # further attempts after an unanswered or non-2xx one


def _with_params(url: str, **changes: str) -> str:
    """The URL with these query parameters set (replaced where present, added where not)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in params}
    params = [(name, changes.get(name, value)) for name, value in params]
    params += [(name, value) for name, value in changes.items() if name not in present]
    return urlunsplit(parts._replace(query=urlencode(params)))


def _query_param(url: str, name: str) -> str:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)).get(name, "")


class Callbacks:
    """The ticker and the sender of one simulator. `notice` is the simulator's status-change hook."""

    def __init__(self, simulator: Simulator, knobs: Knobs, counters: Counters, payload: Payload) -> None:
        self._simulator = simulator
        self._knobs = knobs
        self._counters = counters
        self._payload = payload
        self._work = threading.Condition()
        self._pending: dict[str, deque[Delivery]] = {}  # by task: its deliveries, in sending order
        self._ready: deque[str] = deque()  # tasks with pending deliveries and no worker on them
        self._queued: set[str] = set()  # tasks in _ready or being worked on
        self._last: dict[str, str] = {}  # by task: the status it last called back
        self._held: dict[str, list[list[Delivery]]] = {}  # by task: callbacks callback_reorder holds back
        self._jobs: deque[str] = deque(maxlen=16)  # `job` values of recent callback URLs, for forgeries
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        simulator.on_change = self.notice

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._work:
            if self._started or self._stop.is_set():
                return
            self._started = True
            ticker = threading.Thread(target=self._tick_loop, daemon=True, name="seedance-sim-callback-ticker")
            self._threads.append(ticker)
            ticker.start()
            if self._pending:
                self._start_workers()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._work:
            self._pending.clear()
            self._ready.clear()
            self._work.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def reset(self) -> None:
        """Forget every task's callbacks, sent, held or waiting (the simulator forgot the tasks)."""
        with self._work:
            self._pending.clear()
            self._ready.clear()
            self._last.clear()
            self._held.clear()
            self._jobs.clear()

    @property
    def threads(self) -> list[threading.Thread]:
        """The ticker and the workers started so far (for tests that check a stopped server left none running)."""
        with self._work:
            return list(self._threads)

    def _start_workers(self) -> None:
        # Called with self._work held; workers start with the first callback, so idle servers stay cheap.
        if len(self._threads) > 1:
            return
        for i in range(WORKERS):
            worker = threading.Thread(target=self._work_loop, daemon=True, name=f"seedance-sim-callback-{i}")
            self._threads.append(worker)
            worker.start()

    # -- the hook: which callbacks a change makes -----------------------------------------------------------

    def notice(self, task: TaskRecord) -> None:
        """Queue the callbacks for a task's status change. Runs under the simulator's lock: it queues, never sends."""
        with self._work:  # reset() may run on another thread
            self._notice(task)

    def _notice(self, task: TaskRecord) -> None:
        url = task.request.callback_url
        if url is None or self._stop.is_set():
            return
        dialect = task.request.dialect
        status = ARK_STATUS[task.status] if dialect == "ark" else task.status
        if self._last.get(task.task_id) == status:
            return  # a change the dialect does not show (Ark reports NOT_START and QUEUED both as queued)
        if dialect == "ark" and status not in ARK_CALLBACK_STATUSES:
            return  # the platform calls back queued, running, succeeded, failed and expired: not cancelled
        self._last[task.task_id] = status
        self._wake.set()
        job = _query_param(url, "job")
        if job and job not in self._jobs:
            self._jobs.append(job)
        k = self._knobs
        if k.callback_drop > 0:
            k.callback_drop -= 1
            self._counters.incr("callbacks_dropped")
            return
        body = json.dumps(self._payload(task, dialect)).encode("utf-8")
        due = time.time() + max(0.0, k.callback_delay_seconds)
        # Ark retries only a succeeded or failed callback; the gateway's callbacks are all retried.
        retries = RETRIES if dialect != "ark" or status in ARK_RETRIED_STATUSES else 0
        group = [
            Delivery(task.task_id, url, body, due, retries=retries) for _ in range(1 + max(0, k.callback_duplicate))
        ]
        if k.callback_forge:
            group += self._forgeries(task, url, job, body, due)
        if k.callback_reorder or task.task_id in self._held:
            held = self._held.setdefault(task.task_id, [])
            held.append(group)
            if k.callback_reorder and not task.terminal:
                return
            del self._held[task.task_id]
            group = [delivery for earlier in reversed(held) for delivery in earlier]
        self._enqueue(task.task_id, group)

    def _forgeries(self, task: TaskRecord, url: str, job: str, body: bytes, due: float) -> list[Delivery]:
        token = _query_param(url, "token")
        tampered = token[:-1] + ("B" if token.endswith("A") else "A") if token else "forged"
        others = [other for other in self._jobs if other != job]
        other_job = others[-1] if others else secrets.token_hex(16)
        forged = [
            Delivery(task.task_id, _with_params(url, token=tampered), body, due, forged=True),
            Delivery(task.task_id, _with_params(url, job=other_job), body, due, forged=True),
        ]
        if not task.terminal:
            claim = dataclasses.replace(task, status=SUCCESS, finished_at=time.time())
            claimed = json.dumps(self._payload(claim, task.request.dialect)).encode("utf-8")
            forged.append(Delivery(task.task_id, url, claimed, due, forged=True))
        return forged

    def _enqueue(self, task_id: str, deliveries: list[Delivery]) -> None:
        with self._work:
            if self._stop.is_set():
                return
            self._pending.setdefault(task_id, deque()).extend(deliveries)
            if task_id not in self._queued:
                self._queued.add(task_id)
                self._ready.append(task_id)
                self._work.notify()
            if self._started:
                self._start_workers()

    # -- threads --------------------------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self._stop.is_set():
            if not self._simulator.has_live_callbacks():
                self._wake.wait()  # set by notice() when a task with a callback URL appears
                self._wake.clear()
                continue
            try:
                self._simulator.advance(time.time())
            except Exception:
                log.exception("the callback ticker could not advance the tasks")
            self._stop.wait(TICK_SECONDS)

    def _work_loop(self) -> None:
        while True:
            with self._work:
                while not self._ready and not self._stop.is_set():
                    self._work.wait()
                if self._stop.is_set():
                    return
                task_id = self._ready.popleft()
            while True:
                with self._work:
                    pending = self._pending.get(task_id)
                    if not pending or self._stop.is_set():
                        self._pending.pop(task_id, None)
                        self._queued.discard(task_id)
                        break
                    delivery = pending.popleft()
                self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        while (wait := delivery.due - time.time()) > 0:
            if self._stop.wait(wait):
                return
        attempts = 1 + delivery.retries
        for attempt in range(attempts):
            if attempt and self._stop.wait(self._knobs.callback_retry_seconds * 2 ** (attempt - 1)):
                return
            self._counters.incr("callbacks_forged" if delivery.forged else "callbacks_sent")
            status = self._post(delivery)
            self._counters.record_callback_answer(status)
            log.debug("callback for %s: attempt %d answered %s", delivery.task_id, attempt + 1, status or "nothing")
            if 200 <= status < 300:
                return
        if not delivery.forged:
            self._counters.incr("callbacks_failed")

    def _post(self, delivery: Delivery) -> int:
        """The receiver's HTTP status, or 0 when it gave none (refused, reset, timed out)."""
        # Only http(s): create refused any other callback URL (validation.check_callback_url).
        request = urllib.request.Request(  # noqa: S310
            delivery.url,
            data=delivery.body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
        )
        try:
            with _OPENER.open(request, timeout=self._knobs.callback_timeout_seconds) as answer:
                answer.read()
                return int(answer.status)
        except urllib.error.HTTPError as error:
            error.close()
            return int(error.code)
        except (OSError, http.client.HTTPException, ValueError):
            return 0


__all__ = ["Callbacks", "Delivery"]
