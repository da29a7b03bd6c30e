"""The job lifecycle machine with provider callbacks, and with a daily token budget across UTC days (issue 19).

CallbackJobLifecycle: the Ark machine with callbacks on. The provider calls back, with the job's genuine token,
about any task: once, duplicated (Ark retries), premature ("succeeded" while the task is queued or running), as a
flood, or about a task whose POST was answered with an error (a gateway that forwarded it, then timed out). Each
hand-off runs as it arrives, possibly crashing. Beyond the base invariants: a hand-off never sleeps and never
checks a job another worker holds; the status checks hand-offs make for one job are a hand-off interval apart
whatever arrives; a genuine callback about the task of a WAITING job whose POST was refused means that upload is
never POSTed again.

BudgetJobLifecycle: a DailyTokenBudget of about two jobs' tokens a UTC day, the clock starting minutes before
midnight and jumping over later ones. Beyond the base invariants: no UTC day's POSTs estimate more tokens than the
budget; every job still ends (the end of the run crosses as many UTC days as the queue needs).
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from seedance_pipeline.logic.callback_intake import answer_callback, handoff_interval
from seedance_pipeline.logic.callback_worker import HandoffResult, run_handoff
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.callback_token import callback_token
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.rules.token_estimate import next_utc_day_at, utc_day
from seedance_pipeline.triggers.callback_events import CallbackHandoff, CallbackRequest, parse_handoff_event
from tests.support.fakes import FakeHandoff, FakeSecretText, make_runtime
from tests.support.lifecycle_world import CrashPoint, crash_points, upload_identity
from tests.unit.test_job_lifecycle_machine import (
    BUCKET,
    GOOD_IMAGE,
    KEYS,
    ArkJobLifecycle,
    JobLifecycle,
    machine_settings,
)

CALLBACKS: dict[str, Any] = {
    "provider_api": "ark",
    "api_base_url": "",
    "callback_url": "https://abc.lambda-url.us-east-1.on.aws/",
    "callback_signing_secret_id": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cb",
    "callback_worker_function": "arn:aws:lambda:us-east-1:123456789012:function:stack-CallbackWorkerFunction-abc",
}


class CallbackJobLifecycle(ArkJobLifecycle):
    stack_settings = CALLBACKS
    # A gateway that forwards the POST (the task is made and billed) and answers 503: only a callback can tell.
    submit_faults = (*JobLifecycle.submit_faults, "503-forwarded", "503-forwarded", "503-forwarded")

    def __init__(self) -> None:
        super().__init__()
        handoff = self.fake_runtime.handoff
        assert isinstance(handoff, FakeHandoff)
        self.handoff = handoff
        assert isinstance(self.fake_runtime.signing_key, FakeSecretText)
        self.signing_key = self.fake_runtime.signing_key.value
        # Job id -> when a hand-off's status check of it was made.
        self.handoff_checks: dict[str, list[float]] = {}
        # (upload identity, POSTs seen by then): a callback proved a refused POST of that upload made its task.
        self.proved_sent: list[tuple[tuple[str, str], int]] = []

    @precondition(lambda self: bool(self.provider.tasks))
    @rule(
        data=st.data(),
        status=st.sampled_from(["succeeded", "succeeded", "failed", "running"]),
        copies=st.sampled_from([1, 1, 2, 5, 40]),
        gap=st.sampled_from([0.1, 0.5, 5.0, 31.0]),
        crash=crash_points,
    )
    def the_provider_calls_back(
        self, data: st.DataObject, status: str, copies: int, gap: float, crash: CrashPoint | None
    ) -> None:
        """Callbacks about one task with its job's genuine token, `gap` seconds apart; whatever they claim (a
        premature "succeeded", a "failed" for a task that will succeed), each hand-off runs as it arrives."""
        self._call_back(data.draw(st.sampled_from(sorted(self.provider.tasks))), status, copies, gap, crash)

    @rule(key=st.sampled_from(KEYS), status=st.sampled_from(["succeeded", "failed"]), crash=crash_points)
    def a_refused_post_made_its_task_and_the_provider_calls_back(
        self, key: str, status: str, crash: CrashPoint | None
    ) -> None:
        """An upload's POST is forwarded by a gateway that then answers 503 (the job waits to be sent again); a
        minute later the provider calls back about the task that POST made."""
        made_before = set(self.provider.unknowable)
        self.provider.submit_fault = "503-forwarded"
        self.upload(key, True, None)
        self.provider.submit_fault = None
        made = sorted(self.provider.unknowable - made_before)
        if made:
            self.clock.advance(60)
            self._call_back(made[0], status, 1, 0.5, crash)

    def _call_back(self, task_id: str, status: str, copies: int, gap: float, crash: CrashPoint | None) -> None:
        identity = upload_identity(self.provider.tasks[task_id]["body"])
        upload = next((u for u in self.uploads if (u.key, u.etag) == identity), None)
        if upload is not None:
            job_id = job_id_for(upload)  # also for a task its job never recorded (a refused POST that made it)
        else:  # a batch row's task: its image is the row's, and its job is the one holding the task
            holder = next((j.job_id for j in self.store.jobs() if j.task_id == task_id), None)
            if holder is None:
                return
            job_id = holder
        request = CallbackRequest(
            method="POST",
            job_id=job_id,
            token=callback_token(self.signing_key, job_id),
            body=json.dumps({"id": task_id, "status": status, "content": {"video_url": "https://cdn.example.com/v"}}),
        )
        for copy in range(copies):
            before = self.store.get(job_id)
            refused = (
                before is not None
                and before.status is JobStatus.WAITING
                and before.task_id is None
                and before.submission_started_at is None
                and before.error is None
            )
            self._invoke(lambda _owner: answer_callback(request, self.runtime), None)
            results = [
                self._hand_off(parse_handoff_event(e), crash if copy == 0 else None) for e in self.handoff.take()
            ]
            confirmable = status in ("succeeded", "failed") and self._state(task_id) != "deleted"
            handed_off = bool(results) and None not in results and HandoffResult.LEASED not in results
            if refused and confirmable and handed_off and not self.provider.get_fault:
                self.proved_sent.append((identity, len(self.provider.posts)))
            self.clock.advance(gap)

    def _hand_off(self, handoff: CallbackHandoff, crash: CrashPoint | None) -> object:
        """One CallbackWorkerFunction invocation; its result, or None when it crashed."""
        job = self.store.get(handoff.job_id)
        held = job is not None and (job.lease_until or 0) >= self.clock()
        gets, slept = self.provider.gets, self.slept
        results: list[object] = []
        self._invoke(lambda owner: results.append(run_handoff(handoff, self.runtime, owner=owner)), crash)
        if self.slept != slept:
            self.store.violations.append(f"a hand-off of job {handoff.job_id} slept")
        if self.provider.gets != gets and job is not None and job.task_id is not None:
            self.handoff_checks.setdefault(job.job_id, []).append(self.clock())
            if held:
                self.store.violations.append(
                    f"a hand-off checked job {job.job_id}, leased by {job.lease_owner} until {job.lease_until}"
                )
        return results[0] if results else None

    @invariant()
    def handoff_checks_of_a_job_are_an_interval_apart(self) -> None:
        interval = handoff_interval(self.runtime)
        for job_id, times in self.handoff_checks.items():
            close = [(a, b) for a, b in pairwise(times) if b - a < interval]
            assert not close, f"hand-offs checked job {job_id} at {close}, less than {interval} s apart"

    @invariant()
    def an_upload_a_callback_proved_sent_is_never_sent_again(self) -> None:
        for identity, mark in self.proved_sent:
            again = [at for ident, at, _ in self.provider.posts[mark:] if ident == identity]
            assert not again, (
                f"{identity}: a callback proved its refused POST made a task, yet it was POSTed at {again}"
            )


CallbackJobLifecycle.TestCase.settings = machine_settings(25)
test_callbacks_never_resend_a_proved_post_nor_check_or_deliver_out_of_turn = CallbackJobLifecycle.TestCase


def _estimate() -> int:
    """The tokens the machine's uploads are estimated at (all are the same image with the defaults)."""
    runtime, store, storage, _ = make_runtime()
    storage.add(BUCKET, "uploads/probe.jpg", GOOD_IMAGE)
    job_id = accept_upload(Upload(bucket=BUCKET, key="uploads/probe.jpg", etag="e1"), runtime, owner="probe").job_id
    tokens = store.job(job_id).estimated_tokens
    assert tokens
    return tokens


ESTIMATE = _estimate()
BUDGET = 2 * ESTIMATE + ESTIMATE // 2


class BudgetJobLifecycle(JobLifecycle):
    stack_settings: dict[str, Any] = {"daily_token_budget": BUDGET}
    start_at = next_utc_day_at(1_800_000_000.0) - 300
    # The queue may need a UTC day for every two uploads: the end crosses as many as it takes.
    settle_rounds, settle_seconds = 900, 2000.0

    @rule(past=st.sampled_from([1.0, 90.0, 3600.0]))
    def the_clock_passes_midnight(self, past: float) -> None:
        self.clock.now = next_utc_day_at(self.clock()) + past

    @invariant()
    def no_utc_day_sends_more_than_the_budget(self) -> None:
        estimates = {(j.source_key, j.source_etag or ""): j.estimated_tokens or 0 for j in self.store.jobs()}
        per_day: dict[str, int] = {}
        for identity, at, fault in self.provider.posts:
            if fault in ("429", "503"):
                continue  # refused: no task, and the tokens were given back
            per_day[utc_day(at)] = per_day.get(utc_day(at), 0) + estimates.get(identity, 0)
        over = {day: tokens for day, tokens in per_day.items() if tokens > BUDGET}
        assert not over, f"POSTs estimated past DailyTokenBudget {BUDGET} on {over}"


BudgetJobLifecycle.TestCase.settings = machine_settings(15)
test_a_daily_budget_holds_across_utc_days_and_every_held_job_still_ends = BudgetJobLifecycle.TestCase
