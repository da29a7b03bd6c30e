"""Poll logic: find due jobs in the sparse index, lease each, ask the provider, and move the job on.

One invocation keeps working while it has time: after a pass it sleeps until the next job falls due (within
its window) rather than leaving that job for the next scheduled tick.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from seedance_pipeline.errors import ErrorCode, LeaseLost, Outcome, PipelineError, ProviderAuthError, outcome_of
from seedance_pipeline.logic.check_schedule import planned_check, waiting_retry_at
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.result_delivery import deliver_results
from seedance_pipeline.logic.submission import submit_job
from seedance_pipeline.models import CheckDisposition, DueJob, Job, JobError, JobStatus, ProviderState, TaskResult
from seedance_pipeline.observability import MetricName, count, count_provider_error, job_log_context, logger
from seedance_pipeline.runtime import Runtime

MAX_JOBS_PER_PASS = 5000


class PollReport(BaseModel):
    passes: int = 0
    checked: int = 0
    skipped_leased: int = 0
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

    while window_left() > 0:
        due = collect_due_jobs(runtime)
        if not due:
            earliest = _earliest_due(runtime)
            wait = (earliest - runtime.clock()) if earliest is not None else None
            if wait is None or wait > window_left():
                break
            runtime.sleep(max(0.0, wait))
            continue
        report.passes += 1
        checked_before = report.checked
        _process_pass(due, runtime, owner=owner, report=report, window_left=window_left)
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


def _process_pass(
    due: list[DueJob], runtime: Runtime, *, owner: str, report: PollReport, window_left: Callable[[], float]
) -> None:
    live = [j for j in due if j.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)]
    waiting = sorted((j for j in due if j.status == JobStatus.WAITING), key=lambda j: j.created_at)

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
                result = submit_job(leased, runtime, owner=owner)
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
        report.add(result.status.value)
        if result.status == JobStatus.WAITING and result.last_error is None:
            break  # no capacity left: the rest wait for the next pass
        if result.last_error is not None and result.last_error.code == ErrorCode.PROVIDER_AUTH:
            break  # the key is refused: every further attempt would fail the same way


def _check_one(job: DueJob, runtime: Runtime, *, owner: str) -> JobStatus | CheckDisposition:
    with job_log_context(job.job_id, job.task_id):
        return _lease_and_check(job, runtime, owner=owner)


def _lease_and_check(job: DueJob, runtime: Runtime, *, owner: str) -> JobStatus | CheckDisposition:
    known: TaskResult | None = None
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
) -> tuple[JobStatus | CheckDisposition | None, TaskResult | None]:
    """Ask the provider without a lease; when the task is still pending or running, record that with one
    conditional update (it holds only if nobody leased the job or recorded a check since it was read).

    Returns (disposition, None) when done here, else (None, the answer if one was read) for the lease path, which
    then reuses the answer instead of asking again. Errors, terminal answers and overdue jobs take the lease path.
    """
    settings = runtime.settings
    now = runtime.clock()
    if job.status not in (JobStatus.SUBMITTED, JobStatus.RUNNING) or job.task_id is None:
        return None, None
    if now - job.created_at > settings.max_job_age_seconds:
        return None, None
    try:
        result = runtime.provider().get(job.task_id)
    except PipelineError:
        return None, None  # the lease path asks again and applies the outcome table
    if result.state not in (ProviderState.PENDING, ProviderState.RUNNING):
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
        provider_status=result.raw_status,
        next_check_at=planned_check(as_checked, now, settings),
        now=now,
        usage=result.usage,
    )
    return (status if recorded else CheckDisposition.LEASED), None


# ---------------------------------------------------------------------------------------------------------------


def check_job(job: Job, runtime: Runtime, *, owner: str, known: TaskResult | None = None) -> Job:
    settings = runtime.settings
    now = runtime.clock()
    if now - job.created_at > settings.max_job_age_seconds:
        return finish(
            job,
            runtime,
            owner=owner,
            status=JobStatus.TIMED_OUT,
            error_code=ErrorCode.TIMED_OUT,
            message=f"the provider did not finish task {job.task_id} within {settings.max_job_age_minutes:g} minutes "
            f"(last status {job.provider_status or 'unknown'})",
        )
    assert job.task_id is not None  # live jobs always carry one
    try:
        result = known if known is not None and known.task_id == job.task_id else runtime.provider().get(job.task_id)
    except PipelineError as exc:
        outcome = outcome_of(exc)
        if outcome is Outcome.TRY_LATER:
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
    status = JobStatus.RUNNING if result.state is ProviderState.RUNNING else JobStatus.SUBMITTED
    job = job.model_copy(update={"status": status, "last_error": None})
    return reschedule(job, runtime, owner=owner, next_check_at=planned_check(job, now, settings))


def _deliver(job: Job, result: TaskResult, runtime: Runtime, *, owner: str) -> Job:
    if job.source_sequencer:
        newest = runtime.store.latest_job_for(job.source_bucket, job.source_key)
        if newest is not None and newest != job.job_id:
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
            "notes": [*job.notes, *notes],
            "delivery_attempts": attempts,
            "last_error": None,
        }
    )
    return finish(job, runtime, owner=owner, status=JobStatus.SUCCEEDED)


def _retry_later(job: Job, runtime: Runtime, *, owner: str, error: PipelineError) -> Job:
    now = runtime.clock()
    if isinstance(error, ProviderAuthError):
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
