"""What a provider callback leads to: refuse it, ignore it, or hand the job to a status check and delivery.

A callback is a hint, never a fact: its token proves only that the caller had the job's URL, and its body is
never trusted. A callback that claims a terminal state (or one it cannot read) for a live job is handed to an
asynchronous run of the callback function, which confirms the state with one status GET and delivers: the same
check the poller runs (logic/status_check.py). Everything cheap and refusable comes first, so a flood of forged
callbacks costs no DynamoDB read and no provider call.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from seedance_pipeline.errors import ErrorCode, LeaseLost, PipelineError, SecretUnavailable
from seedance_pipeline.logic.status_check import check_job
from seedance_pipeline.models import Job, JobStatus, ProviderState, TaskClaim
from seedance_pipeline.observability import count_callback, job_log_context, logger
from seedance_pipeline.rules.callback_token import HANDOFF_OWNER_PREFIX, TOKEN_LENGTH, is_job_id, token_matches
from seedance_pipeline.runtime import Runtime
from seedance_pipeline.triggers.callback_events import CallbackHandoff, CallbackRequest

# Ark's own callbacks are the Get body (a few kB); anything this large is not a task document.
MAX_BODY_BYTES = 64 * 1024
_MAX_BASE64_CHARS = (MAX_BODY_BYTES + 2) // 3 * 4
_NOT_DONE = (ProviderState.PENDING, ProviderState.RUNNING)
_LIVE = (JobStatus.SUBMITTED, JobStatus.RUNNING)
# A hand-off that finds the job held by the submitter (still saving the task a quick provider already finished) or
# a poller (whose GET may have come just before the end) looks again after 0.25 s, 0.5 s, 1 s... (at most 8 s
# apart), for this long: enough for a POST's answer or a status check; a delivery ends the job anyway.
HANDOFF_WAIT_SECONDS = 60.0
HANDOFF_FIRST_WAIT_SECONDS = 0.25
HANDOFF_MAX_WAIT_STEP_SECONDS = 8.0
# Another hand-off's lease (HANDOFF_OWNER_PREFIX) is never waited for: its GET came after a terminal claim, so it
# finds the end itself, and duplicate or replayed callbacks (even a flood on a leaked URL) end at once.


class CallbackOutcome(StrEnum):
    ACCEPTED = "accepted"  # handed off: a status check follows at once
    IGNORED = "ignored"  # genuine but nothing to do (not terminal, replay, stale, another task): 200, stop retrying
    REFUSED = "refused"  # not ours: wrong method, too large, bad token or job id
    FAILED = "failed"  # ours but we could not act now (signing key or hand-off): the provider may call again


@dataclass(frozen=True)
class CallbackAnswer:
    status_code: int
    outcome: CallbackOutcome
    reason: str

    def as_http(self) -> dict[str, Any]:
        return {
            "statusCode": self.status_code,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"outcome": self.outcome.value, "reason": self.reason}),
        }


def answer_callback(request: CallbackRequest, runtime: Runtime, *, function_name: str) -> CallbackAnswer:
    """Judge one provider POST; log and count its outcome (never its token, query string or URL)."""
    answer, job_id = _judge(request, runtime, function_name=function_name)
    count_callback(answer.outcome.value)
    # A job id is logged only once its token proved it ours: an attacker's query string never reaches the logs.
    logger.info(
        "provider callback",
        extra={"outcome": answer.outcome.value, "reason": answer.reason, **({"job_id": job_id} if job_id else {})},
    )
    return answer


def _judge(request: CallbackRequest, runtime: Runtime, *, function_name: str) -> tuple[CallbackAnswer, str | None]:
    if request.method.upper() != "POST":
        return CallbackAnswer(405, CallbackOutcome.REFUSED, "only POST is accepted"), None
    # The raw length first: a huge body is never decoded, nor its base64 form.
    if len(request.body) > (_MAX_BASE64_CHARS if request.is_base64 else MAX_BODY_BYTES):
        return _too_large(), None
    job_id, token = request.job_id, request.token
    if not is_job_id(job_id) or not token:
        return CallbackAnswer(403, CallbackOutcome.REFUSED, "no valid job or token"), None
    assert job_id is not None
    try:
        key = runtime.callback_signing_key()
    except SecretUnavailable as exc:
        logger.error(
            "the callback signing key cannot be read: callbacks are not checked (polling continues)",
            extra={"error_code": exc.code, "secret_id": exc.secret_id, "cause": exc.cause},
        )
        return CallbackAnswer(503, CallbackOutcome.FAILED, "the callback cannot be checked now"), None
    if not _signed_by_us(key, job_id, token, runtime):
        return CallbackAnswer(403, CallbackOutcome.REFUSED, "no valid job or token"), None

    raw = _raw_bytes(request)
    if raw is not None and len(raw) > MAX_BODY_BYTES:
        return _too_large(), job_id
    claim = _claim(_json_object(raw), runtime)
    if claim.state in _NOT_DONE:
        # Nothing to deliver yet, whatever the job's record says: no read, the scheduled check stands.
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the task is not finished"), job_id
    job = runtime.store.get(job_id)
    if job is not None and job.task_id is None and job.error and job.error.code == ErrorCode.SUBMISSION_UNCERTAIN:
        # Only this job's POST carried the URL: the task it may have made exists, and will be billed. Nothing is
        # adopted on a body's word; the operator learns which task to look at before a retry pays again.
        logger.warning(
            "the provider called back about this job, whose submission ended uncertain: its task exists; look "
            "at it in the provider's console before `jobs retry` pays for another",
            extra={"claimed_task_id": claim.task_id, "claimed_state": claim.state},
        )
    if job is None or job.status.is_terminal:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job is finished or unknown"), job_id
    if job.task_id is None and not _being_submitted(job):
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job has no task yet"), job_id
    if claim.task_id is not None and job.task_id is not None and claim.task_id != job.task_id:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the callback is about another task"), job_id
    handoff = runtime.handoff
    try:
        if handoff is None:
            raise PipelineError("no hand-off is configured")
        handoff.hand_off(job_id, function_name=function_name)
    except PipelineError as exc:
        logger.error("could not hand the callback off; the job's scheduled check remains", extra={"error": exc.message})
        return CallbackAnswer(503, CallbackOutcome.FAILED, "the callback could not be handed off"), job_id
    return CallbackAnswer(200, CallbackOutcome.ACCEPTED, "the task is being checked"), job_id


def _signed_by_us(key: str, job_id: str, token: str, runtime: Runtime) -> bool:
    if token_matches(key, job_id, token):
        return True
    if len(token) != TOKEN_LENGTH:
        return False  # not even the shape of a token: no other key is looked at
    # The key may have been rotated: by the submitter that signed this URL, or after it did.
    return any(token_matches(other, job_id, token) for other in runtime.other_signing_keys() if other != key)


def _being_submitted(job: Job) -> bool:
    """The POST left and its answer is not recorded yet: a provider that calls back within milliseconds (or while
    a lost answer is looked up) finds the task id still unsaved. The hand-off waits for it instead of losing the
    callback, which would leave the video to the late first check."""
    return job.status is JobStatus.WAITING and job.submission_started_at is not None


def _too_large() -> CallbackAnswer:
    return CallbackAnswer(413, CallbackOutcome.REFUSED, f"the body is over {MAX_BODY_BYTES} bytes")


def _raw_bytes(request: CallbackRequest) -> bytes | None:
    if not request.is_base64:
        return request.body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(request.body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is none (unreadable bodies are judged by the status check)."""
    if raw is None:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _claim(payload: dict[str, Any] | None, runtime: Runtime) -> TaskClaim:
    reader = runtime.callback_reader
    if payload is None or reader is None:
        return TaskClaim()  # unreadable: it may be done, and the status check decides
    try:
        return reader.read_claim(payload)
    except Exception:  # a body the reader cannot take apart is as unreadable as one that is not JSON
        return TaskClaim()


class HandoffResult(StrEnum):
    IGNORED = "ignored"  # unknown, finished or not yet submitted
    LEASED = "leased"  # a poller is already on it


def run_handoff(handoff: CallbackHandoff, runtime: Runtime, *, owner: str) -> JobStatus | HandoffResult:
    """Lease the job and run the poller's own status check and delivery, with this invocation's whole time."""
    owner = HANDOFF_OWNER_PREFIX + owner
    job_id = handoff.job_id
    if not is_job_id(job_id):
        return HandoffResult.IGNORED
    job = _once_let_go(job_id, runtime)
    if job is None or job.task_id is None or job.status not in _LIVE:
        return HandoffResult.IGNORED
    with job_log_context(job_id, job.task_id):
        try:
            leased = runtime.store.acquire_lease(
                job, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.lease_seconds
            )
        except LeaseLost:
            logger.info("a callback's job is leased by another worker; it is already being checked")
            return HandoffResult.LEASED
        try:
            checked = check_job(leased, runtime, owner=owner)
        except LeaseLost:
            logger.warning("lost a job's lease mid-check")
            return HandoffResult.LEASED
        logger.info("callback check done", extra={"status": checked.status.value})
        return checked.status


def _once_let_go(job_id: str, runtime: Runtime) -> Job | None:
    """The job once no other worker holds it, or as it is after HANDOFF_WAIT_SECONDS. A holder that finishes the
    job ends the wait (no status call follows); one that rescheduled it leaves it to this hand-off's own check, so
    a GET made just before the task finished does not push the video back by a whole back-off interval."""
    job = runtime.store.get(job_id)
    wait = HANDOFF_WAIT_SECONDS
    if runtime.time_left is not None:
        wait = min(wait, runtime.time_left() / 2)  # the rest is the check's and the delivery's
    give_up, step = runtime.clock() + wait, HANDOFF_FIRST_WAIT_SECONDS
    while job is not None and not job.status.is_terminal and _held_by_another_worker(job, runtime.clock()):
        if runtime.clock() >= give_up:
            break
        runtime.sleep(min(step, max(0.0, give_up - runtime.clock())))
        step = min(step * 2, HANDOFF_MAX_WAIT_STEP_SECONDS)
        job = runtime.store.get(job_id)
    return job


def _held_by_another_worker(job: Job, now: float) -> bool:
    """Leased by a submitter or a poller (another hand-off is never waited for)."""
    leased = job.lease_until is not None and job.lease_until > now
    return leased and not (job.lease_owner or "").startswith(HANDOFF_OWNER_PREFIX)
