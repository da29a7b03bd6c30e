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
from seedance_pipeline.logic.callback_intake import remember_callback_token
from seedance_pipeline.logic.check_schedule import planned_check
from seedance_pipeline.logic.delivery_attempts import deliver_or_retry, end_unless_delivered
from seedance_pipeline.logic.due_book import Tracked
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.moderation_outcome import end_moderated, moderation_of
from seedance_pipeline.logic.supersession import replaced_by_newer_upload
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
    remember_callback_token(job.job_id, runtime)
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
    remember_callback_token(job.job_id, runtime)
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
        return end_unless_delivered(
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
        return deliver_or_retry(job, result, runtime, owner=owner)
    cancel_said = None
    if result.state is ProviderState.PENDING and settings.provider_api == "ark":
        # Only a dialect that can cancel pays for the look-up: a queued task cancelled now is never billed.
        superseded = replaced_by_newer_upload(job, runtime)
        if superseded or _past_age_limit(job, now, settings.max_job_age_seconds):
            job, moved_on, cancel_said = _cancel_queued(job, runtime)
            if moved_on is not None:
                # The task left the queue before the cancel: judge what it is now (a finished task is delivered,
                # to this job's own key when a newer upload replaced it; a running one runs on).
                return check_job(job, runtime, owner=owner, known=moved_on)
            if superseded:
                return finish(
                    job,
                    runtime,
                    owner=owner,
                    status=JobStatus.FAILED,
                    error_code=ErrorCode.SUPERSEDED,
                    message=f"a newer upload of this key replaced this one while its task was queued; {cancel_said}",
                )
    if _past_age_limit(job, now, settings.max_job_age_seconds):
        if result.state is ProviderState.RUNNING and settings.provider_api == "ark":
            cancel_said = f"task {job.task_id} is running, which cannot be cancelled: it may still finish and be billed"
        elif settings.provider_api != "ark":
            cancel_said = (
                f"task {job.task_id} was not cancelled (this API cannot cancel): it may still finish and be billed"
            )
        return _time_out(job, runtime, owner=owner, cancel_said=cancel_said)
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


def _time_out(
    job: Job, runtime: Runtime, *, owner: str, last_problem: str | None = None, cancel_said: str | None = None
) -> Job:
    minutes = runtime.settings.max_job_age_minutes
    problem = f"; last problem: {last_problem}" if last_problem else ""
    # What became of the task goes into the error, so the event says it too: a task not cancelled may be billed.
    cancel = f"; {cancel_said}" if cancel_said else ""
    return end_unless_delivered(
        job,
        runtime,
        owner=owner,
        status=JobStatus.TIMED_OUT,
        error_code=ErrorCode.TIMED_OUT,
        message=f"the provider did not finish task {job.task_id} within {minutes:g} minutes of its submission "
        f"(last status {job.provider_status or 'unknown'}{problem}){cancel}",
    )


def _cancel_queued(job: Job, runtime: Runtime) -> tuple[Job, TaskResult | None, str]:
    """Cancel the job's queued task, saying only what the provider confirms. On Ark a DELETE cancels a queued task
    but deletes a finished task's record (its video with it), and any 2xx answers both: so the task is read just
    before (a task no longer queued is returned, to be judged, and never deleted) and after (only a task whose
    status reads `cancelled` is called cancelled). Returns the job with a note, the task if it left the queue,
    and the one sentence of truth for the job's error and event. Never blocks the terminal transition."""
    assert job.task_id is not None
    task_id = job.task_id
    provider = runtime.provider()
    deadline = runtime.provider_deadline(job.lease_until)
    try:
        before = provider.get(task_id, deadline=deadline)
    except PipelineError as exc:
        said = f"task {task_id} was not cancelled: its state could not be read first ({exc.message}); it may run on"
        return _noted(job, f"{said} and be billed"), None, f"{said} and be billed"
    if before.task_id != task_id:
        said = f"task {task_id} was not cancelled: the provider answered about another task; it may run on"
        return _noted(job, f"{said} and be billed"), None, f"{said} and be billed"
    if before.state is not ProviderState.PENDING:
        return job, before, ""
    try:
        accepted = provider.cancel(task_id, deadline=deadline)
    except Exception as exc:
        reason = exc.message if isinstance(exc, PipelineError) else type(exc).__name__
        logger.warning("the provider did not cancel the task", extra={"task_id": task_id, "error": reason[:300]})
        said = f"the provider refused to cancel task {task_id} ({reason}): it may still run and be billed"
        return _noted(job, said), None, said
    if not accepted:
        said = f"task {task_id} could not be cancelled (this API cannot cancel): it may still run and be billed"
        return _noted(job, said), None, said
    try:
        after = provider.get(task_id, deadline=deadline)
    except PipelineError as exc:
        said = (
            f"the provider accepted the cancel of task {task_id}, but the task could not be read afterwards "
            f"({exc.message}): it may have finished (and been billed) just before, and the cancel deleted its record"
        )
        return _noted(job, said), None, said
    if after.state is ProviderState.FAILED and after.raw_status.strip().lower() in ("cancelled", "canceled"):
        logger.info("the provider task was cancelled", extra={"task_id": task_id})
        said = f"the provider task {task_id} was cancelled (its status reads {after.raw_status}); nothing is billed"
        return _noted(job, f"the provider task {task_id} was cancelled"), None, said
    if after.state is ProviderState.SUCCEEDED:
        return job, after, ""
    said = (
        f"the provider accepted the cancel of task {task_id}, but its status now reads {after.raw_status}: "
        "it may still run and be billed"
    )
    return _noted(job, said), None, said


def _noted(job: Job, note: str) -> Job:
    return job.model_copy(update={"notes": [*job.notes, note]})


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
