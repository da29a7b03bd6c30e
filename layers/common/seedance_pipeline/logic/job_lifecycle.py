"""Job transitions that touch more than the record: terminal states give back the slot, emit metrics and events.

A terminal transition is two steps. `finish` saves the terminal record marked `finalize_pending` (still leased,
still in the due index), then `complete_finish` gives back the slot, publishes the event and clears the mark. If
anything fails in between (the slot release, the event, a crash), the record stays findable: the next poll that
leases it runs `complete_finish` again. Giving back a slot twice is harmless; the event is at-least-once across
crashes, but one EventBridge refuses is logged and not retried (adapters/job_events.py; docs/known-limits.md).
"""

from __future__ import annotations

from seedance_pipeline.logic.batch_report import close_batch
from seedance_pipeline.models import Job, JobError, JobStatus
from seedance_pipeline.observability import MetricName, MetricUnit, count, count_tokens, logger
from seedance_pipeline.rules.keys import due_shard_for
from seedance_pipeline.runtime import Runtime

_TERMINAL_METRIC = {
    JobStatus.SUCCEEDED: MetricName.JOB_SUCCEEDED,
    JobStatus.FAILED: MetricName.JOB_FAILED,
    JobStatus.REJECTED: MetricName.JOB_REJECTED,
    JobStatus.TIMED_OUT: MetricName.JOB_TIMED_OUT,
}


def reschedule(job: Job, runtime: Runtime, *, owner: str, next_check_at: float) -> Job:
    """Save a live job, give up our lease, and put it back in the due index."""
    updated = job.model_copy(
        update={
            "next_check_at": next_check_at,
            "updated_at": runtime.clock(),
            "lease_owner": None,
            "lease_until": None,
        }
    )
    updated = updated.bounded()
    runtime.store.save(updated, owner=owner, due_shard=due_shard_for(job.job_id, runtime.settings.due_index_shards))
    return updated


def finish(
    job: Job,
    runtime: Runtime,
    *,
    owner: str,
    status: JobStatus,
    error_code: str | None = None,
    message: str | None = None,
) -> Job:
    """Terminal transition: recorded first (marked unfinished), then slot released, one metric, one event."""
    now = runtime.clock()
    error = JobError(code=error_code or status.value, message=message or "") if status != JobStatus.SUCCEEDED else None
    lease_until = max(job.lease_until or now, now)
    terminal = job.model_copy(
        update={
            "status": status,
            "error": error,
            "finished_at": now,
            "updated_at": now,
            # Due once our lease has run out: only a worker that finds the release undone by then completes it.
            "next_check_at": lease_until,
            "finalize_pending": True,
            "lease_owner": owner,
            "lease_until": lease_until,
        }
    ).bounded()
    shard = due_shard_for(job.job_id, runtime.settings.due_index_shards)
    runtime.store.save(terminal, owner=owner, due_shard=shard, expires_at=now + runtime.settings.retention_seconds)
    count(_TERMINAL_METRIC[status])
    if status == JobStatus.SUCCEEDED and job.submitted_at:
        count(MetricName.GENERATION_SECONDS, now - job.submitted_at, MetricUnit.Seconds)
    if status == JobStatus.SUCCEEDED and job.billed_tokens is not None and job.request is not None:
        count_tokens(MetricName.TOKENS_BILLED, job.request.model, job.billed_tokens)
    log = logger.info if status == JobStatus.SUCCEEDED else logger.warning
    log(
        f"job {status.value}",
        extra={
            "job_id": job.job_id,
            "task_id": job.task_id,
            "status": status.value,
            "error": error and error.model_dump(),
        },
    )
    try:
        return complete_finish(terminal, runtime, owner=owner)
    except Exception:
        # The terminal record is safe; what is left undone is picked up by a later poll (see the module docstring).
        logger.exception("could not complete a terminal transition; a later poll completes it")
        return terminal


def complete_finish(job: Job, runtime: Runtime, *, owner: str) -> Job:
    """For a leased terminal job marked finalize_pending: give back its slot, publish its event, clear the mark."""
    # Always release: a slot taken just before a crash would otherwise leak, and a slot not held is harmless.
    runtime.store.release_slot(job.job_id, slot=job.slot)
    if job.batch is not None:
        job = _count_on_batch(job, runtime, owner=owner)
    done = job.model_copy(
        update={
            "finalize_pending": False,
            "next_check_at": None,
            "lease_owner": None,
            "lease_until": None,
            "slot": None,
        }
    )
    runtime.events.publish(done)
    finished_at = job.finished_at or runtime.clock()
    runtime.store.save(done, owner=owner, due_shard=None, expires_at=finished_at + runtime.settings.retention_seconds)
    return done


def _count_on_batch(job: Job, runtime: Runtime, *, owner: str) -> Job:
    """A batch row's end is counted on its batch once (in the same write that marks it counted). The job that ends
    last closes the batch and stays unfinished (in the due index) until the close is done: until its rows are all
    written (BatchStillBeingWritten) and its `Batch Completed` is published (BatchPublishPending, or any fault).
    A later poll completes it, finds it counted, and closes the batch again (batch_report.py)."""
    assert job.batch is not None
    batch_id = job.batch.batch_id
    if not job.batch_counted:
        shard = due_shard_for(job.job_id, runtime.settings.due_index_shards)
        remaining = runtime.store.save_counting_batch(job, owner=owner, due_shard=shard, expires_at=None)
        job = job.model_copy(update={"batch_counted": True})
        if remaining != 0:
            return job
    # Counted already (a retried finish): close_batch reads the batch and does nothing unless this job was last.
    close_batch(batch_id, runtime)
    return job


__all__ = ["complete_finish", "finish", "reschedule"]
