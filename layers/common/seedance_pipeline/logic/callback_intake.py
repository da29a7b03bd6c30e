"""What a provider callback leads to: refuse it, ignore it, or hand the job to the callback worker.

This runs in CallbackFunction, behind a public Function URL: it holds the signing key, reads one job (GetItem) and
invokes the worker (CallbackWorkerFunction, logic/callback_worker.py), nothing else. A callback is a hint, never a
fact: its token proves only that the caller had the job's URL, and its body is never trusted. Everything cheap and
refusable comes first, so a flood of forged callbacks costs no DynamoDB read and no provider call; a flood of
genuine-token claims costs one read each and at most one hand-off per job per HANDOFF_INTERVAL_SECONDS.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from seedance_pipeline.errors import PipelineError, SecretUnavailable
from seedance_pipeline.models import Job, JobStatus, ProviderState, TaskClaim
from seedance_pipeline.observability import MetricName, count, count_callback, logger
from seedance_pipeline.rules.callback_token import TOKEN_LENGTH, callback_token, is_job_id, token_matches
from seedance_pipeline.runtime import Runtime
from seedance_pipeline.triggers.callback_events import CallbackRequest

# Ark's own callbacks are the Get body (a few kB); anything this large is not a task document. Judged in bytes.
MAX_BODY_BYTES = 64 * 1024
_MAX_BASE64_CHARS = (MAX_BODY_BYTES + 2) // 3 * 4
# UTF-8 takes at most 4 bytes a character: a text body this short cannot be over the limit.
_SURELY_SMALL_CHARS = MAX_BODY_BYTES // 4
_NOT_DONE = (ProviderState.PENDING, ProviderState.RUNNING)
# A job is handed off at most once per this many seconds (half the poller's longest back-off interval; scaled by
# CheckScheduleScale like it), kept on its record (`handoff_at`): duplicates, Ark's own retries and a flood on a
# leaked URL cost one status call an interval, not one each. The poll net still checks on its own schedule.
HANDOFF_INTERVAL_SECONDS = 30.0


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


def answer_callback(request: CallbackRequest, runtime: Runtime) -> CallbackAnswer:
    """Judge one provider POST; log and count its outcome (never its token, query string or URL)."""
    answer, job_id = _judge(request, runtime)
    count_callback(answer.outcome.value)
    # A job id is logged only once its token proved it ours: an attacker's query string never reaches the logs.
    logger.info(
        "provider callback",
        extra={"outcome": answer.outcome.value, "reason": answer.reason, **({"job_id": job_id} if job_id else {})},
    )
    return answer


def _judge(request: CallbackRequest, runtime: Runtime) -> tuple[CallbackAnswer, str | None]:
    if request.method.upper() != "POST":
        return CallbackAnswer(405, CallbackOutcome.REFUSED, "only POST is accepted"), None
    # The size first, in bytes, before the token: a huge body is never decoded, nor its base64 form.
    if _too_many_bytes(request):
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
    if job is None:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job is finished or unknown"), job_id
    if job.task_id is None and not _being_submitted(job):
        return _about_a_task_never_recorded(job, claim, runtime), job_id
    if job.status.is_terminal:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job is finished or unknown"), job_id
    if claim.task_id is not None and job.task_id is not None and claim.task_id != job.task_id:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the callback is about another task"), job_id
    now = runtime.clock()
    if delivery_retry_pending(job, now):
        # A callback may bring a check forward, never a delivery retry: each attempt counts towards the limit.
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "a delivery retry is scheduled"), job_id
    if handed_off_lately(job, now, runtime):
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job was checked moments ago"), job_id
    return _hand_off(job_id, runtime, task_id=None), job_id


def remember_callback_token(job_id: str, runtime: Runtime) -> None:
    """Compute (and so remember, for redaction by value) the token this job's URL carries, before a provider's
    answer about it is read: a poller never signed the URLs the submitter sent, and a provider may echo the URL
    in a shape no pattern knows. Nothing when callbacks are off or the key cannot be read now."""
    if runtime.signing_key is None or not is_job_id(job_id):
        return
    try:
        callback_token(runtime.callback_signing_key(), job_id)
    except SecretUnavailable:
        return  # the patterns still apply


def delivery_retry_pending(job: Job, now: float) -> bool:
    """A delivery failed and its retry is scheduled for later (logic/status_check.py)."""
    return job.delivery_attempts > 0 and job.next_check_at is not None and job.next_check_at > now


def handoff_interval(runtime: Runtime) -> float:
    return HANDOFF_INTERVAL_SECONDS * runtime.settings.check_schedule_scale


def handed_off_lately(job: Job, now: float, runtime: Runtime) -> bool:
    return job.handoff_at is not None and now - job.handoff_at < handoff_interval(runtime)


def _about_a_task_never_recorded(job: Job, claim: TaskClaim, runtime: Runtime) -> CallbackAnswer:
    """A genuine terminal claim for a job with no task: its POST was answered with an error, or never answered,
    yet only that POST carried the URL. The task exists and is billed: never dropped silently."""
    if claim.task_id is None:
        return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job has no task yet")
    count(MetricName.CALLBACKS_ABOUT_UNKNOWN_TASKS)
    error = job.error or job.last_error
    logger.warning(
        "the provider called back about a task this job never recorded: its POST was refused or its answer uncertain, "
        "yet created the task (it will be billed); look at it in the provider's console before `jobs retry` pays "
        "for another",
        extra={
            "claimed_task_id": claim.task_id,
            "claimed_state": claim.state,
            "job_status": job.status.value,
            "error_code": error.code if error else None,
        },
    )
    if job.status is JobStatus.WAITING and job.error is None:
        # The poller would send it again: the worker confirms the task with a GET and stops the resend.
        return _hand_off(job.job_id, runtime, task_id=claim.task_id)
    return CallbackAnswer(200, CallbackOutcome.IGNORED, "the job's submission was refused; the task is reported")


def _hand_off(job_id: str, runtime: Runtime, *, task_id: str | None) -> CallbackAnswer:
    handoff = runtime.handoff
    try:
        if handoff is None or not runtime.settings.callback_worker_function:
            raise PipelineError("no callback worker is configured (CALLBACK_WORKER_FUNCTION is empty)")
        handoff.hand_off(job_id, function_name=runtime.settings.callback_worker_function, task_id=task_id)
    except PipelineError as exc:
        logger.error("could not hand the callback off; the job's scheduled check remains", extra={"error": exc.message})
        return CallbackAnswer(503, CallbackOutcome.FAILED, "the callback could not be handed off")
    return CallbackAnswer(200, CallbackOutcome.ACCEPTED, "the task is being checked")


def _too_many_bytes(request: CallbackRequest) -> bool:
    body = request.body
    if request.is_base64:
        return len(body) > _MAX_BASE64_CHARS
    if len(body) <= _SURELY_SMALL_CHARS:
        return False
    return len(body) > MAX_BODY_BYTES or len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES


def _signed_by_us(key: str, job_id: str, token: str, runtime: Runtime) -> bool:
    if token_matches(key, job_id, token):
        return True
    if len(token) != TOKEN_LENGTH:
        return False  # not even the shape of a token: no other key is looked at
    # The key may have been rotated: by the submitter that signed this URL, or after it did.
    return any(token_matches(other, job_id, token) for other in runtime.other_signing_keys() if other != key)


def _being_submitted(job: Job) -> bool:
    """The POST left and its answer is not recorded yet: a provider that calls back within milliseconds (or while
    a lost answer is looked up) finds the task id still unsaved. It is handed off all the same: the worker runs a
    moment later and usually finds the task saved; if not, the submitter's save and the poll net finish the job."""
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
