"""What one status check decides: ask the provider about a job's task and move the job on from its answer.

A check that only finds the task still running records that without a lease; anything else (a result to
deliver, an error to retry or end on, an age limit passed, a queued task to cancel) is judged under the lease.
"""

from __future__ import annotations

from seedance_pipeline.errors import (
    ErrorCode,
    Outcome,
    PipelineError,
    ProviderAuthError,
    ProviderUnavailable,
    SecretUnavailable,
    outcome_of,
)
from seedance_pipeline.logic.check_schedule import planned_check, waiting_retry_at
from seedance_pipeline.logic.due_book import Tracked
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.moderation_outcome import end_moderated, moderation_of
from seedance_pipeline.logic.result_delivery import deliver_results
from seedance_pipeline.models import (
    MAX_STATUS_CHARS,
    DueJob,
    Job,
    JobError,
    JobStatus,
    ProviderState,
    TaskResult,
    bounded_usage,
    cut,
)
from seedance_pipeline.observability import MetricName, count, count_provider_error, logger
from seedance_pipeline.rules.callback_token import HANDOFF_OWNER_PREFIX
from seedance_pipeline.rules.token_estimate import billed_tokens
from seedance_pipeline.runtime import Runtime


# --- optimistic status check (dynamodb cost): a check that delivers nothing takes no lease ----------------------
def check_without_lease(tracked: Tracked, runtime: Runtime) -> tuple[Tracked | None, TaskResult | PipelineError | None]:
    """Ask the provider without a lease; when the task is still pending or running, return the job as checked
    (one more check, its next check planned), for the poller to keep until it records it (`record_still_running`).

    Returns (checked, None) when done here, else (None, the answer or the error if the provider was asked) for the
    lease path, which then judges that answer instead of asking again: one status call per check, whichever path.
    Errors, terminal answers and overdue jobs take the lease path.
    """
    settings = runtime.settings
    now = runtime.clock()
    job = tracked.job
    if job.status not in (JobStatus.SUBMITTED, JobStatus.RUNNING) or job.task_id is None:
        return None, None
    if _past_age_limit(job, now, settings.max_job_age_seconds):
        return None, None  # the lease path asks and judges the age limit
    try:
        # No lease is held, but the call keeps to what a lease would allow, as every status check does.
        result = runtime.provider().get(job.task_id, deadline=runtime.provider_deadline(now + settings.lease_seconds))
    except PipelineError as exc:
        return None, exc  # the lease path applies the outcome table to it
    if result.state not in (ProviderState.PENDING, ProviderState.RUNNING):
        return None, result
    if result.state is ProviderState.PENDING and settings.provider_api == "ark":
        # A queued Ark task can still be cancelled unbilled if a newer upload replaced the job: that needs the
        # job's key, which only the full record (the lease path) holds.
        return None, result
    count(MetricName.STATUS_CHECKS)
    status = JobStatus.RUNNING if result.state is ProviderState.RUNNING else JobStatus.SUBMITTED
    # Once a job has been checked, the schedule reads only its age, submission time and number of checks.
    as_checked = Job(
        job_id=job.job_id,
        status=status,
        source_bucket="",
        source_key="",
        created_at=job.created_at,
        updated_at=now,
        submitted_at=job.submitted_at,
        checks=job.checks + 1,
    )
    checked = job.model_copy(
        update={"status": status, "checks": job.checks + 1, "next_check_at": planned_check(as_checked, now, settings)}
    )
    return (
        Tracked(
            job=checked,
            recorded=tracked.recorded,
            # Bounded as a full save would bound them: an answer the client did not validate must not grow the item.
            provider_status=cut(result.raw_status, MAX_STATUS_CHARS),
            usage=bounded_usage(result.usage),
        ),
        None,
    )


def record_still_running(tracked: Tracked, runtime: Runtime) -> bool:
    """Write the checks made without a lease in one conditional update; False when another worker wrote the job
    (leased it, recorded a check, moved it on) since it was read: its record then stands."""
    assert tracked.provider_status is not None
    assert tracked.job.next_check_at is not None
    return runtime.store.record_check(
        tracked.recorded,
        checks=tracked.job.checks,
        status=tracked.job.status,
        provider_status=tracked.provider_status,
        next_check_at=tracked.job.next_check_at,
        now=runtime.clock(),
        usage=tracked.usage,
    )


# ---------------------------------------------------------------------------------------------------------------


def check_job(job: Job, runtime: Runtime, *, owner: str, known: TaskResult | PipelineError | None = None) -> Job:
    """Ask the provider, then judge. The age limit of a paid job counts from its submission and is applied only
    after asking: a job is never timed out on a status it was not asked for (see `_past_age_limit`)."""
    settings = runtime.settings
    now = runtime.clock()
    assert job.task_id is not None  # live jobs always carry one
    try:
        if isinstance(known, PipelineError):
            raise known  # the check without a lease met it: judged here, not asked again
        result = (
            known
            if known is not None and known.task_id == job.task_id
            else runtime.provider().get(job.task_id, deadline=runtime.provider_deadline(job.lease_until))
        )
        if result.task_id != job.task_id:
            # An answer about another task must never deliver that task's video as this upload's.
            raise ProviderUnavailable(f"the provider answered about task {result.task_id}, not {job.task_id}")
    except PipelineError as exc:
        outcome = outcome_of(exc)
        if outcome is Outcome.TRY_LATER:
            # Our own secret outage is not an answer: a paid task the provider was never asked about is never
            # timed out for it (the video would be lost, and a retry would pay again).
            if not isinstance(exc, SecretUnavailable) and _past_age_limit(
                job, now, settings.max_job_age_seconds * (1 if job.checks else 2)
            ):
                # Asked before and past the limit; or never answered at all for twice the limit.
                return _time_out(job, runtime, owner=owner, last_problem=exc.message)
            return _retry_later(job, runtime, owner=owner, error=exc)
        if outcome is Outcome.DROP:
            raise
        return finish(
            job,
            runtime,
            owner=owner,
            status=JobStatus.FAILED,
            error_code=exc.code,
            message=f"the provider no longer knows task {job.task_id} ({exc.message}); "
            "task records are kept about 7 days",
        )
    count(MetricName.STATUS_CHECKS)
    if _callback_missed(job, result, owner):
        count(MetricName.CALLBACKS_MISSED)
    job = job.model_copy(update={"checks": job.checks + 1, "provider_status": result.raw_status, "usage": result.usage})

    if result.state is ProviderState.FAILED:
        moderated = moderation_of(result.failure_code, result.failure_reason)
        if moderated is not None:
            flag, rule = moderated
            return end_moderated(job, runtime, owner=owner, moderation=flag, rule=rule, text=result.failure_reason)
        return finish(
            job,
            runtime,
            owner=owner,
            status=JobStatus.FAILED,
            error_code=ErrorCode.PROVIDER_FAILURE,
            message=result.failure_reason,
        )
    if result.state is ProviderState.SUCCEEDED:
        return _deliver(job, result, runtime, owner=owner)
    queued = result.state is ProviderState.PENDING
    if queued and settings.provider_api == "ark" and _superseded(job, runtime):
        # Only a dialect that can cancel pays for this look-up: a queued task cancelled now is never billed.
        return finish(
            _cancel_queued(job, runtime),
            runtime,
            owner=owner,
            status=JobStatus.FAILED,
            error_code=ErrorCode.SUPERSEDED,
            message="a newer upload of this key replaced this one while its task was queued",
        )
    if _past_age_limit(job, now, settings.max_job_age_seconds):
        return _time_out(_cancel_queued(job, runtime) if queued else job, runtime, owner=owner)
    status = JobStatus.RUNNING if result.state is ProviderState.RUNNING else JobStatus.SUBMITTED
    job = job.model_copy(update={"status": status, "last_error": None})
    return reschedule(job, runtime, owner=owner, next_check_at=planned_check(job, now, settings))


def _callback_missed(job: Job, result: TaskResult, owner: str) -> bool:
    """A poll, not a callback's hand-off, found the end of a job that expected a callback (once per job)."""
    done = result.state in (ProviderState.SUCCEEDED, ProviderState.FAILED)
    return done and job.expects_callback and job.delivery_attempts == 0 and not owner.startswith(HANDOFF_OWNER_PREFIX)


def _past_age_limit(job: Job | DueJob, now: float, limit_seconds: float) -> bool:
    # The clock of a paid job starts at its submission: time spent WAITING for capacity cost nothing.
    return now - (job.submitted_at or job.created_at) > limit_seconds


def _time_out(job: Job, runtime: Runtime, *, owner: str, last_problem: str | None = None) -> Job:
    minutes = runtime.settings.max_job_age_minutes
    problem = f"; last problem: {last_problem}" if last_problem else ""
    return finish(
        job,
        runtime,
        owner=owner,
        status=JobStatus.TIMED_OUT,
        error_code=ErrorCode.TIMED_OUT,
        message=f"the provider did not finish task {job.task_id} within {minutes:g} minutes of its submission "
        f"(last status {job.provider_status or 'unknown'}{problem})",
    )


def _superseded(job: Job, runtime: Runtime) -> bool:
    if not job.source_sequencer:
        return False
    newest = runtime.store.latest_job_for(job.source_bucket, job.source_key)
    return newest is not None and newest != job.job_id


def _cancel_queued(job: Job, runtime: Runtime) -> Job:
    """Ask the provider to cancel the job's queued task and note it when it did. Never blocks the terminal
    transition: a refusal (the task started meanwhile) or a fault is logged, and the job ends all the same."""
    assert job.task_id is not None
    try:
        cancelled = runtime.provider().cancel(job.task_id, deadline=runtime.provider_deadline(job.lease_until))
    except Exception as exc:
        logger.warning("could not cancel the provider task", extra={"task_id": job.task_id, "error": str(exc)[:300]})
        return job
    if not cancelled:
        return job
    logger.info("the provider task was cancelled", extra={"task_id": job.task_id})
    return job.model_copy(update={"notes": [*job.notes, f"the provider task {job.task_id} was cancelled"]})


def _deliver(job: Job, result: TaskResult, runtime: Runtime, *, owner: str) -> Job:
    if _superseded(job, runtime):
        return finish(
            job,
            runtime,
            owner=owner,
            status=JobStatus.FAILED,
            error_code=ErrorCode.SUPERSEDED,
            message="a newer upload of this key replaced this one while it was generating; "
            "its outputs are left to the newer job",
        )
    attempts = job.delivery_attempts + 1
    try:
        with runtime.delivery_slot():
            outputs, notes = deliver_results(job, result, runtime)
    except PipelineError as exc:
        outcome = outcome_of(exc)
        if outcome is Outcome.DROP:
            raise
        if outcome is not Outcome.TRY_LATER:
            return finish(job, runtime, owner=owner, status=JobStatus.FAILED, error_code=exc.code, message=exc.message)
        if attempts >= runtime.settings.max_delivery_attempts:
            return finish(
                job,
                runtime,
                owner=owner,
                status=JobStatus.FAILED,
                error_code=exc.code,
                message=f"{exc.message} (gave up after {attempts} attempts)",
            )
        job = job.model_copy(
            update={"delivery_attempts": attempts, "last_error": JobError(code=exc.code, message=exc.message)}
        )
        retry_at = (
            waiting_retry_at(runtime.clock(), runtime.settings) + attempts * runtime.settings.check_schedule_scale
        )
        return reschedule(job, runtime, owner=owner, next_check_at=retry_at)
    job = job.model_copy(
        update={
            "outputs": outputs,
            "billed_tokens": billed_tokens(result.usage),
            "notes": [*job.notes, *notes],
            "delivery_attempts": attempts,
            "last_error": None,
        }
    )
    return finish(job, runtime, owner=owner, status=JobStatus.SUCCEEDED)


def _retry_later(job: Job, runtime: Runtime, *, owner: str, error: PipelineError) -> Job:
    now = runtime.clock()
    if isinstance(error, SecretUnavailable):
        count(MetricName.SECRET_ERROR)
        logger.error(
            "the API key secret cannot be read while checking a job: the job stays live",
            extra={"error_code": error.code, "secret_id": error.secret_id, "cause": error.cause, "fix": error.message},
        )
    elif isinstance(error, ProviderAuthError):
        count(MetricName.PROVIDER_AUTH_ERROR)
        logger.error(
            "the provider refused the API key while checking a job: fix the key in the secret",
            extra={"error_code": error.code},
        )
        runtime.refresh_provider()
    else:
        count_provider_error(error.code)
        logger.warning(
            "status check failed; will retry",
            extra={
                "job_id": job.job_id,
                "task_id": job.task_id,
                "error_code": error.code,
                "error": error.message,
            },
        )
    job = job.model_copy(update={"last_error": JobError(code=error.code, message=error.message)})
    # Treat it as checked once so the back-off interval applies rather than the first-check estimate.
    as_checked = job.model_copy(update={"checks": max(job.checks, 1)})
    planned = planned_check(as_checked, now, runtime.settings)
    return reschedule(job, runtime, owner=owner, next_check_at=planned)
