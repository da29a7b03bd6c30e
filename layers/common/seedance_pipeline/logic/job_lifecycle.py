"""Job transitions that touch more than the record: terminal states give back the slot, emit metrics and events."""

from __future__ import annotations

from seedance_pipeline.models import Job, JobError, JobStatus
from seedance_pipeline.observability import MetricName, MetricUnit, count, logger
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
    """Terminal transition: out of the due index, TTL set, slot released, one metric, one event."""
    now = runtime.clock()
    error = JobError(code=error_code or status.value, message=message or "") if status != JobStatus.SUCCEEDED else None
    updated = job.model_copy(
        update={
            "status": status,
            "error": error,
            "finished_at": now,
            "updated_at": now,
            "next_check_at": None,
            "lease_owner": None,
            "lease_until": None,
        }
    )
    runtime.store.save(updated, owner=owner, due_shard=None, expires_at=now + runtime.settings.retention_seconds)
    # Always: a slot taken just before a crash would otherwise leak, and giving back a slot not held is harmless.
    runtime.store.release_slot(job.job_id)
    count(_TERMINAL_METRIC[status])
    if status == JobStatus.SUCCEEDED and job.submitted_at:
        count(MetricName.GENERATION_SECONDS, now - job.submitted_at, MetricUnit.Seconds)
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
    runtime.events.publish(updated)
    return updated


__all__ = ["finish", "reschedule"]
