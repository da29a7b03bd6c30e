"""Poll logic: find due jobs in the sparse index, lease each, ask the provider, and move the job on.

One invocation keeps working while it has time: after a pass it sleeps until the next job falls due (within
its window) rather than leaving that job for the next scheduled tick.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from seedance_pipeline.errors import (
    LeaseLost,
    PipelineError,
)
from seedance_pipeline.logic.check_schedule import waiting_retry_at
from seedance_pipeline.logic.job_lifecycle import complete_finish
from seedance_pipeline.logic.status_check import _record_if_still_running, check_job
from seedance_pipeline.logic.submission import Blocked, try_submit
from seedance_pipeline.models import (
    CheckDisposition,
    DueJob,
    JobStatus,
    TaskResult,
)
from seedance_pipeline.observability import MetricName, count, job_log_context, logger
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
