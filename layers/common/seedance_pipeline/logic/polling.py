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
from seedance_pipeline.logic.admission_order import fair_order, source_count, sources_of
from seedance_pipeline.logic.batch_resume import resume_stalled_writes
from seedance_pipeline.logic.check_schedule import waiting_retry_at
from seedance_pipeline.logic.due_book import READS_PER_WINDOW, DueBook, Tracked
from seedance_pipeline.logic.job_lifecycle import complete_finish
from seedance_pipeline.logic.status_check import check_job, check_without_lease, record_still_running
from seedance_pipeline.logic.submission import Blocked, try_submit
from seedance_pipeline.models import (
    CheckDisposition,
    DueJob,
    Job,
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
    """Work through due jobs until the window closes or nothing falls due within it (see due_book.py)."""
    settings = runtime.settings
    started = runtime.clock()
    report = PollReport()

    def window_left() -> float:
        return min(
            time_left() - settings.poll_deadline_margin_seconds,
            started + settings.poll_window_seconds - runtime.clock(),
        )

    book = DueBook()
    read_every = settings.poll_window_seconds / READS_PER_WINDOW
    read_at: float | None = None
    reconciled = False
    # After the queue met no capacity (or an unreadable or refused key), the waiting jobs still due are left
    # alone until then: the next pass would only meet the same, one job at a time.
    queue_paused_until = 0.0
    # A job ended here gives its slot to a waiting one: a queue seen in the index is read again at once.
    slot_freed = False
    try:
        while window_left() > 0:
            now = runtime.clock()
            if read_at is None or now - read_at >= read_every or (slot_freed and book.has_waiting()):
                # Batch writes that died half-way first, so the rows they write are in this read (batch_resume.py).
                resume_stalled_writes(runtime, owner=owner, time_left=window_left)
                read, cut_short = collect_due_jobs(runtime, until=now + window_left())
                book.refresh(read, complete=not cut_short)
                read_at, slot_freed = now, False
            queue_paused = now < queue_paused_until
            due = book.take_due(now, waiting_too=not queue_paused)
            if not due:
                wake = book.next_due(waiting_after=queue_paused_until)
                if wake is None or wake - now > window_left():
                    break
                runtime.sleep(max(0.0, min(wake, read_at + read_every) - now))
                continue
            report.passes += 1
            checked_before = report.checked
            blocked, ended = _process_pass(due, runtime, book, owner=owner, report=report, window_left=window_left)
            slot_freed = slot_freed or ended
            if blocked is not None:
                queue_paused_until = waiting_retry_at(runtime.clock(), settings)
            if blocked is Blocked.NO_CAPACITY and not reconciled:
                # Jobs queue for capacity: make sure every slot is held by a live job (a leaked slot blocks forever).
                reconciled = True
                report.stale_slots_released += release_stale_slots(
                    runtime, known_live={t.job.job_id for t in due if not t.job.status.is_terminal}
                )
            if report.checked == checked_before:
                break  # everything due is leased by another invocation; their leases will expire into a later tick
    finally:
        _hand_over(book, runtime)
    count(MetricName.JOBS_IN_FLIGHT, len(runtime.store.slot_holders()))
    return report


def collect_due_jobs(runtime: Runtime, *, until: float) -> tuple[list[DueJob], bool]:
    """Live jobs due by `until` (those due now and those falling due in the window), and whether the read was cut
    short. Each shard gives at most its share of MAX_JOBS_PER_PASS, soonest first: jobs due later in one shard
    never crowd out a job due now in another."""
    shards = runtime.store.due_shards
    share = -(-MAX_JOBS_PER_PASS // shards)
    jobs: list[DueJob] = []
    cut_short = False
    for shard in range(shards):
        for count_in_shard, job in enumerate(runtime.store.due_jobs(str(shard), until), start=1):
            jobs.append(job)
            if count_in_shard >= share:
                cut_short = True
                break
    return jobs, cut_short


def _hand_over(book: DueBook, runtime: Runtime) -> None:
    """Record the checks this invocation kept unrecorded, so the next one starts from them (one write a job)."""
    held = book.unrecorded()
    if not held:
        return

    def record(tracked: Tracked) -> None:
        try:
            record_still_running(tracked, runtime)
        except Exception:
            # The record is as it was before this invocation's checks: the next poll checks the job again.
            logger.exception("could not record a status check", extra={"job_id": tracked.job.job_id})

    with ThreadPoolExecutor(max_workers=runtime.settings.poll_concurrency, thread_name_prefix="hand-over") as pool:
        list(pool.map(record, held))


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
    due: list[Tracked],
    runtime: Runtime,
    book: DueBook,
    *,
    owner: str,
    report: PollReport,
    window_left: Callable[[], float],
) -> tuple[Blocked | None, bool]:
    """One pass over the due jobs: why the waiting queue stopped (when it stopped early), and whether a job ended."""
    live = [t for t in due if t.job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING)]
    waiting = _admission_order([t for t in due if t.job.status == JobStatus.WAITING], runtime)
    unfinished = [t for t in due if t.job.status.is_terminal]
    ended = False
    for position, tracked in enumerate(unfinished):
        if window_left() <= 0:
            _keep_all(book, unfinished[position:] + live + waiting)
            return None, ended
        _complete_unfinished(tracked.recorded, runtime, owner=owner, report=report)
        ended = True

    def check(tracked: Tracked) -> tuple[JobStatus | CheckDisposition | None, Tracked | Job | None]:
        if window_left() <= 0:
            return None, tracked  # not checked: the window closed
        with job_log_context(tracked.job.job_id, tracked.job.task_id):
            return _lease_and_check(tracked, runtime, owner=owner, window_left=window_left)

    # Live jobs first: their completions free capacity for the waiting ones.
    with ThreadPoolExecutor(max_workers=runtime.settings.poll_concurrency, thread_name_prefix="poll") as pool:
        for status, after in pool.map(check, live):
            if status is None:
                if isinstance(after, Tracked):
                    book.keep(after)
                continue
            if status == CheckDisposition.LEASED:
                report.skipped_leased += 1
                continue
            report.checked += 1
            report.add(status)
            if isinstance(after, Tracked):
                book.keep(after)
            elif isinstance(after, Job):
                book.note_written(after)
                ended = ended or after.status.is_terminal
    # Waiting jobs one at a time, sources in turns (admission_order.py): admission is a shared counter.
    for position, tracked in enumerate(waiting):
        if window_left() <= 0:
            _keep_all(book, waiting[position:])
            break
        try:
            leased = runtime.store.acquire_lease(
                tracked.recorded, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.claim_lease_seconds
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
        book.note_written(attempt.job)
        if attempt.blocked is not None:
            # No capacity, a refused key or an unreadable secret: every job behind this one would meet the same.
            _keep_all(book, waiting[position + 1 :])
            return attempt.blocked, ended
    return None, ended


def _admission_order(waiting: list[Tracked], runtime: Runtime) -> list[Tracked]:
    """Oldest first, but sources in turns (admission_order.py); the slot holders are read only when two or more
    sources wait, so a queue of one source costs nothing more."""
    if source_count(waiting, job_id=lambda t: t.job.job_id) < 2:
        return sorted(waiting, key=lambda t: t.job.created_at)
    return fair_order(
        waiting,
        job_id=lambda t: t.job.job_id,
        created_at=lambda t: t.job.created_at,
        in_flight=sources_of(runtime.store.slot_holders()),
    )


def _keep_all(book: DueBook, untouched: list[Tracked]) -> None:
    for tracked in untouched:
        book.keep(tracked)


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


def _lease_and_check(
    tracked: Tracked, runtime: Runtime, *, owner: str, window_left: Callable[[], float]
) -> tuple[JobStatus | CheckDisposition, Tracked | Job | None]:
    """Check a live job; returns what happened and the job as it now is (kept unrecorded, or as written)."""
    known: TaskResult | PipelineError | None = None
    try:
        checked, known = check_without_lease(tracked, runtime)
    except Exception:
        logger.exception("unexpected error while checking a job without a lease")
        return CheckDisposition.ERROR, None
    if checked is not None:
        assert checked.job.next_check_at is not None
        if checked.job.next_check_at - runtime.clock() < window_left():
            return checked.job.status, checked  # checked again in this window: recorded when handed over
        try:
            recorded = record_still_running(checked, runtime)
        except Exception:
            # The record is as it was: a later read finds the job due again. The rest of the pass goes on.
            logger.exception("could not record a status check")
            return CheckDisposition.ERROR, None
        return (checked.job.status, None) if recorded else (CheckDisposition.LEASED, None)
    try:
        # The lease's condition is on the record as read; the checks made here since count in what it returns.
        leased = runtime.store.acquire_lease(
            tracked.recorded, owner=owner, now=runtime.clock(), lease_seconds=runtime.settings.lease_seconds
        )
    except LeaseLost:
        return CheckDisposition.LEASED, None
    if leased.task_id == tracked.job.task_id and leased.checks < tracked.job.checks:
        leased = leased.model_copy(update={"checks": tracked.job.checks})
    try:
        after = check_job(leased, runtime, owner=owner, known=known)
    except LeaseLost:
        logger.warning("lost a job's lease mid-check")
        return CheckDisposition.LEASED, None
    except Exception:
        # Leave the job for its lease to expire and a later poll to retry; never lose it, never crash the pass.
        logger.exception("unexpected error while checking a job")
        return CheckDisposition.ERROR, None
    return after.status, after
