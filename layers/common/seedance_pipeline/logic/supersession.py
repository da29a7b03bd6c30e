"""Whether a newer upload of a job's key replaces it: only a newer upload that can still deliver does.

A re-upload that was rejected (a broken file), or that failed, delivers nothing: the older job's paid video stays
the key's outputs. Read only when the key's newest-upload record names another job (a re-upload), never on the
common path.
"""

from __future__ import annotations

from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.runtime import Runtime


def replaced_by_newer_upload(job: Job, runtime: Runtime) -> bool:
    """True when the key's newest-upload record names another job that is live or has delivered. A record whose
    job can no longer be read (its item expired) is taken as a newer upload that delivered: the stricter reading,
    as the caller keeps this job's paid video at its own key either way."""
    if not job.source_sequencer:
        return False
    store = runtime.store
    newest = store.latest_job_for(job.source_bucket, job.source_key)
    if newest is None or newest == job.job_id:
        return False
    return can_deliver(store.get(newest))


def can_deliver(job: Job | None) -> bool:
    return job is None or not job.status.is_terminal or job.status is JobStatus.SUCCEEDED


__all__ = ["can_deliver", "replaced_by_newer_upload"]
