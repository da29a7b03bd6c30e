"""Poll logic: find due jobs in the sparse index, lease each, ask the provider, and move the job on.

One invocation keeps working while it has time: after a pass it sleeps until the next job falls due (within
its window) rather than leaving that job for the next scheduled tick.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from seedance_pipeline.errors import (
    ErrorCode,
    LeaseLost,
    Outcome,
    PipelineError,
    ProviderAuthError,
    SecretUnavailable,
    outcome_of,
)
from seedance_pipeline.logic.check_schedule import planned_check, waiting_retry_at
from seedance_pipeline.logic.job_lifecycle import complete_finish, finish, reschedule
from seedance_pipeline.logic.result_delivery import deliver_results
from seedance_pipeline.logic.submission import Blocked, try_submit
from seedance_pipeline.models import (
    MAX_STATUS_CHARS,
    CheckDisposition,
    DueJob,
    Job,
    JobError,
    JobStatus,
    ProviderState,
    TaskResult,
    bounded_usage,
    cut,
)
from seedance_pipeline.observability import MetricName, count, count_provider_error, job_log_context, logger
from seedance_pipeline.rules.token_estimate import billed_tokens
from seedance_pipeline.runtime import Runtime

MAX_JOBS_PER_PASS = 5000


class PollReport(BaseModel):
    passes: int = 0
    checked: int = 0
    skipped_leased: int = 0
    stale_slots_released: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)

    def add(self, status: str) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + 1


def run_poll(runtime: Runtime, *, owner: str, time_left: Callable[[], float]) -> PollReport:
    """Work through due jobs until the window closes or nothing falls due within it."""
    settings = runtime.settings
    started = runtime.clock()
    report = PollReport()

    def window_left() -> float:
        return min(
            time_left() - settings.poll_deadline_margin_seconds,
            started + settings.poll_window_seconds - runtime.clock(),
        )

    reconciled = False
    # After the queue met no capacity (or an unreadable or refused key), the waiting jobs still due are left
    # alone until then: the next pass would only meet the same, one job at a time.
    queue_paused_until = 0.0
    while window_left() > 0:
        due = collect_due_jobs(runtime)
        queue_paused = runtime.clock() < queue_paused_until
        if queue_paused:
            due = [j for j in due if j.status is not JobStatus.WAITING]
        if not due:
            earliest = _earliest_due(runtime)
            if earliest is not None and queue_paused:
                earliest = max(earliest, queue_paused_until)
            wait = (earliest - runtime.clock()) if earliest is not None else None
            if wait is None or wait > window_left():
                break
            runtime.sleep(max(0.0, wait))
            continue
        report.passes += 1
        checked_before = report.checked
        blocked = _process_pass(due, runtime, owner=owner, report=report, window_left=window_left)
        if blocked is not None:
            queue_paused_until = waiting_retry_at(runtime.clock(), settings)
        if blocked is Blocked.NO_CAPACITY and not reconciled:
            # Jobs queue for capacity: make sure every slot is held by a live job (a leaked slot blocks forever).
            reconciled = True
            report.stale_slots_released += release_stale_slots(
                runtime, known_live={j.job_id for j in due if not j.status.is_terminal}
            )
        if report.checked == checked_before:
            break  # everything due is leased by another invocation; their leases will expire into a later tick
    count(MetricName.JOBS_IN_FLIGHT, len(runtime.store.slot_holders()))
    return report


def collect_due_jobs(runtime: Runtime) -> list[DueJob]:
    now = runtime.clock()
    jobs: list[DueJob] = []
    for shard in range(runtime.store.due_shards):
        for job in runtime.store.due_jobs(str(shard), now):
            jobs.append(job)
            if len(jobs) >= MAX_JOBS_PER_PASS:
                return jobs
    return jobs


def _earliest_due(runtime: Runtime) -> float | None:
    times = [t for s in range(runtime.store.due_shards) if (t := runtime.store.earliest_due(str(s))) is not None]
    return min(times) if times else None


def release_stale_slots(runtime: Runtime, *, known_live: set[str]) -> int:
    """Give back every slot whose job is terminal or gone. A holder seen live in this pass needs no read."""
    released = 0
    for job_id in sorted(runtime.store.slot_holders() - known_live):
        job = runtime.store.get(job_id)
        if job is None or job.status.is_terminal:
            runtime.store.release_slot(job_id)
            released += 1
            logger.warning(
                "gave back a slot its job no longer needed",
                extra={"job_id": job_id, "status": job.status.value if job else "missing"},
            )
    if released:
        count(MetricName.STALE_SLOTS_RELEASED, released)
    return released


def _process_pass(
    due: list[DueJob], runtime: Runtime, *, owner: str, report: PollReport, window_left: Callable[[], float]
) -> Blocked | None:
    """One pass over the due jobs; returns why the waiting queue stopped, when it stopped early."""
    live = [j for j in due if j.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)]
    waiting = sorted((j for j in due if j.status == JobStatus.WAITING), key=lambda j: j.created_at)
    unfinished = [j for j in due if j.status.is_terminal]
    for job in unfinished:
        if window_left() <= 0:
            return None
        _complete_unfinished(job, runtime, owner=owner, report=report)

    def check(job: DueJob) -> None:
        if window_left() <= 0:
            return
        status = _check_one(job, runtime, owner=owner)
        if status == CheckDisposition.LEASED:
            report.skipped_leased += 1
        else:
            report.checked += 1
            report.add(status)

    # Live jobs first: their completions free capacity for the waiting ones.
    with ThreadPoolExecutor(max_workers=runtime.settings.poll_concurrency, thread_name_prefix="poll") as pool:
        list(pool.map(check, live))
    # Waiting jobs in upload order, one at a time: admission is a shared counter and order is fairness.
    for job in waiting:
        if window_left() <= 0:
            break
        try:
            leased = runtime.store.acquire_lease(
                job, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.claim_lease_seconds
            )
        except LeaseLost:
            report.skipped_leased += 1
            continue
        with job_log_context(leased.job_id):
            try:
                attempt = try_submit(leased, runtime, owner=owner)
            except LeaseLost:
                report.skipped_leased += 1
                continue
            except Exception:
                # One broken job must not stall the queue behind it: its lease expires and a later poll retries
                # it, until MaxJobAgeMinutes ends it as TIMED_OUT.
                logger.exception("unexpected error while submitting a waiting job")
                report.add(CheckDisposition.ERROR)
                continue
        report.checked += 1
        report.add(attempt.job.status.value)
        if attempt.blocked is not None:
            # No capacity, a refused key or an unreadable secret: every job behind this one would meet the same.
            return attempt.blocked
    return None


def _complete_unfinished(job: DueJob, runtime: Runtime, *, owner: str, report: PollReport) -> None:
    """A terminal job whose slot release or event did not happen (a fault or crash right after its terminal save)."""
    with job_log_context(job.job_id, job.task_id):
        try:
            leased = runtime.store.acquire_lease(
                job, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.claim_lease_seconds
            )
            complete_finish(leased, runtime, owner=owner)
        except LeaseLost:
            report.skipped_leased += 1
            return
        except Exception:
            logger.exception("could not complete a terminal job's transition; a later poll retries")
            report.add(CheckDisposition.ERROR)
            return
        logger.info("completed an unfinished terminal transition")
        report.checked += 1
        report.add(CheckDisposition.FINALIZED)


def _check_one(job: DueJob, runtime: Runtime, *, owner: str) -> JobStatus | CheckDisposition:
    with job_log_context(job.job_id, job.task_id):
        return _lease_and_check(job, runtime, owner=owner)


def _lease_and_check(job: DueJob, runtime: Runtime, *, owner: str) -> JobStatus | CheckDisposition:
    known: TaskResult | PipelineError | None = None
    try:
        recorded, known = _record_if_still_running(job, runtime)
    except Exception:
        logger.exception("unexpected error while checking a job without a lease")
        return CheckDisposition.ERROR
    if recorded is not None:
        return recorded
    try:
        leased = runtime.store.acquire_lease(
            job, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.lease_seconds
        )
    except LeaseLost:
        return CheckDisposition.LEASED
    try:
        return check_job(leased, runtime, owner=owner, known=known).status
    except LeaseLost:
        logger.warning("lost a job's lease mid-check")
        return CheckDisposition.LEASED
    except Exception:
        # Leave the job for its lease to expire and a later poll to retry; never lose it, never crash the pass.
        logger.exception("unexpected error while checking a job")
        return CheckDisposition.ERROR


# --- optimistic status check (dynamodb cost): a check that delivers nothing takes no lease ----------------------
def _record_if_still_running(
    job: DueJob, runtime: Runtime
) -> tuple[JobStatus | CheckDisposition | None, TaskResult | PipelineError | None]:
    """Ask the provider without a lease; when the task is still pending or running, record that with one
    conditional update (it holds only if nobody leased the job or recorded a check since it was read).

    Returns (disposition, None) when done here, else (None, the answer or the error if the provider was asked) for
    the lease path, which then judges that answer instead of asking again: one status call per check, whichever
    path. Errors, terminal answers and overdue jobs take the lease path.
    """
    settings = runtime.settings
    now = runtime.clock()
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
    recorded = runtime.store.record_check(
        job,
        status=status,
        # Bounded as a full save would bound them: an answer the client did not validate must not grow the item.
        provider_status=cut(result.raw_status, MAX_STATUS_CHARS),
        next_check_at=planned_check(as_checked, now, settings),
        now=now,
        usage=bounded_usage(result.usage),
    )
    return (status if recorded else CheckDisposition.LEASED), None


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
    except PipelineError as exc:
        outcome = outcome_of(exc)
        if outcome is Outcome.TRY_LATER:
            if _past_age_limit(job, now, settings.max_job_age_seconds * (1 if job.checks else 2)):
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
    job = job.model_copy(update={"checks": job.checks + 1, "provider_status": result.raw_status, "usage": result.usage})

    if result.state is ProviderState.FAILED:
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
