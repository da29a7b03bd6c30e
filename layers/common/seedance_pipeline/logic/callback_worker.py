"""CallbackWorkerFunction: what the callback intake hands off. Confirms a claimed end with one status GET (the
poller's own check, logic/status_check.py) and delivers, or stops the resend of a job whose refused POST created
the task after all.

Never waits: a job leased by another worker (a submitter, a poller, another hand-off) is left to its holder, and
the poll net finishes the job. A job is taken at most once per hand-off interval (the lease and the cap are one
conditional write), and never for a delivery retry before its scheduled time.
"""

from __future__ import annotations

from enum import StrEnum

from seedance_pipeline.errors import ErrorCode, LeaseLost, PipelineError
from seedance_pipeline.logic.callback_intake import delivery_retry_pending, handoff_interval
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.status_check import check_job
from seedance_pipeline.logic.submission import UNCERTAIN_ADVICE
from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.observability import job_log_context, logger
from seedance_pipeline.rules.callback_token import HANDOFF_OWNER_PREFIX, is_job_id
from seedance_pipeline.runtime import Runtime
from seedance_pipeline.triggers.callback_events import CallbackHandoff

_LIVE = (JobStatus.SUBMITTED, JobStatus.RUNNING)


class HandoffResult(StrEnum):
    IGNORED = "ignored"  # unknown, finished, not yet submitted, or a delivery retry is scheduled
    LEASED = "leased"  # another worker holds it, or a hand-off took it within the interval


def run_handoff(handoff: CallbackHandoff, runtime: Runtime, *, owner: str) -> JobStatus | HandoffResult:
    """Lease the job and run the poller's status check and delivery, with this invocation's whole time."""
    owner = HANDOFF_OWNER_PREFIX + owner
    job_id = handoff.job_id
    if not is_job_id(job_id):
        return HandoffResult.IGNORED
    job = runtime.store.get(job_id)
    now = runtime.clock()
    if job is None:
        return HandoffResult.IGNORED
    if job.task_id is None and handoff.task_id and _refused_and_waiting(job):
        with job_log_context(job_id, handoff.task_id):
            return _stop_the_resend(job, handoff.task_id, runtime, owner=owner)
    if job.task_id is None or job.status not in _LIVE or delivery_retry_pending(job, now):
        return HandoffResult.IGNORED
    with job_log_context(job_id, job.task_id):
        try:
            leased = runtime.store.lease_for_handoff(
                job,
                owner=owner,
                now=now,
                lease_seconds=runtime.settings.lease_seconds,
                not_since=now - handoff_interval(runtime),
            )
        except LeaseLost:
            logger.info("a callback's job is leased or was checked moments ago; left to that check")
            return HandoffResult.LEASED
        try:
            checked = check_job(leased, runtime, owner=owner)
        except LeaseLost:
            logger.warning("lost a job's lease mid-check")
            return HandoffResult.LEASED
        logger.info("callback check done", extra={"status": checked.status.value})
        return checked.status


def _refused_and_waiting(job: Job) -> bool:
    """WAITING after a POST answered with an error, and not being sent again right now."""
    return job.status is JobStatus.WAITING and job.submission_started_at is None and job.error is None


def _stop_the_resend(job: Job, task_id: str, runtime: Runtime, *, owner: str) -> JobStatus | HandoffResult:
    """The provider called back, with this job's token, about a task its refused POST created. Confirmed with one
    GET, the job ends SUBMISSION_UNCERTAIN naming the task: sending it again would pay twice. The task is not
    adopted: a token proves the URL, not that the task is this upload's (a leaked URL could name another job's)."""
    now = runtime.clock()
    try:
        leased = runtime.store.acquire_lease(
            job, owner=owner, now=now, lease_seconds=runtime.settings.claim_lease_seconds
        )
    except LeaseLost:
        return HandoffResult.LEASED
    try:
        result = runtime.provider().get(task_id, deadline=runtime.provider_deadline(leased.lease_until))
        known = result.task_id == task_id
    except PipelineError as exc:
        logger.warning("a callback named a task the provider does not confirm", extra={"error": exc.message})
        known = False
    if not known:
        # Not confirmed (unknown task, or the provider cannot answer now): the job waits as it did.
        reschedule(leased, runtime, owner=owner, next_check_at=job.next_check_at or now)
        return HandoffResult.IGNORED
    refusal = job.last_error.message if job.last_error else "an error"
    return finish(
        leased,
        runtime,
        owner=owner,
        status=JobStatus.FAILED,
        error_code=ErrorCode.SUBMISSION_UNCERTAIN,
        message=f"the POST was answered with {refusal}, yet the provider called back about task {task_id} for "
        f"this job and knows it: the task was created and is billed. Not resent, to avoid paying twice: "
        f"{UNCERTAIN_ADVICE}",
    ).status
