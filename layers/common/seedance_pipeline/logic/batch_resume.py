"""Batch writes that stopped half-way (the submit function died, or ran short of time), finished by the poller.

Until its rows are all written, a batch's record sits in the due index under a shard of its own, due when its writer's
lease has run out and models.WRITER_GRACE_SECONDS more have passed, when the writer is surely dead
(adapters/batch_items.py); a writer that stopped short of time is due at once. Once per pass the poller asks for those
(one Query, empty and cheap when none is due), takes the writer's lease (one conditional write: of two pollers, one
resumes), reads the batch file again by the version (or ETag) it was accepted at and writes the rows from the recorded
progress on. Only the first chunk after it may hold rows already (the dead writer's last), so that one is written
conditionally: a row a poller already moved on is never written back. A file that is gone or changed since cannot give
the rows left: they are written refused, with the reason, so the poller rejects them and the batch still completes.
"""

from __future__ import annotations

from collections.abc import Callable

from seedance_pipeline.errors import ErrorCode, InvalidInput, ObjectGone
from seedance_pipeline.logic.batch_intake import (
    ROW_SPACING_SECONDS,
    batch_jobs,
    chunk_seconds,
    row_source_key,
    write_jobs,
)
from seedance_pipeline.logic.batch_reading import read_batch_rows
from seedance_pipeline.logic.batch_report import batch_job_ids
from seedance_pipeline.models import Batch, BatchRowRef, Job, JobStatus, Upload
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.keys import due_shard_for
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.runtime import Runtime

NewJobs = list[tuple[Job, str | None, float | None]]


def resume_stalled_writes(runtime: Runtime, *, owner: str, time_left: Callable[[], float]) -> int:
    """Write on every batch whose writer's lease (and grace) ran out before its rows were all written; how many this
    resumed.
    Never raises: a write that fails keeps its lease until it runs out, and a later poll resumes it again."""
    store = runtime.store
    try:
        stalled = store.stalled_batch_writes(runtime.clock())
    except Exception:
        logger.exception("could not list the stalled batch writes; a later poll looks again")
        return 0
    resumed = 0
    for batch_id in stalled:
        if time_left() < chunk_seconds(runtime):
            break
        lease = runtime.settings.claim_lease_seconds
        batch = store.take_batch_writer(batch_id, owner=owner, now=runtime.clock(), lease_seconds=lease)
        if batch is None:
            continue  # another poller, or the event's retry, took it first
        try:
            resume_write(batch, runtime, owner=owner, time_left=time_left)
        except Exception:
            logger.exception("could not resume a batch write; a later poll resumes it", extra={"batch_id": batch_id})
            continue
        resumed += 1
    return resumed


def resume_write(batch: Batch, runtime: Runtime, *, owner: str, time_left: Callable[[], float]) -> bool:
    """Under the writer's lease: write the batch's rows from its recorded progress on (True when all are)."""
    upload = Upload(bucket=batch.bucket, key=batch.key, version_id=batch.version_id, etag=batch.etag)
    logger.warning(
        "resuming a batch write that stopped half-way",
        extra={"batch_id": batch.batch_id, "written": batch.written, "jobs": batch.jobs},
    )
    try:
        jobs = batch_jobs(upload, batch.batch_id, read_batch_rows(upload, runtime), runtime, batch.created_at)
        if [job.job_id for job, _, _ in jobs] != [job_id for _, _, job_id in batch_job_ids(batch)]:
            raise InvalidInput("it now reads as other rows than when it was accepted", code=ErrorCode.INVALID_BATCH)
    except (InvalidInput, ObjectGone) as exc:
        logger.warning(
            "a half-written batch's file cannot give its rows again; the rows left are refused",
            extra={"batch_id": batch.batch_id, "reason": exc.message},
        )
        jobs = refused_jobs(batch, runtime, reason=exc.message)
    return write_jobs(batch, jobs, runtime, owner=owner, start=batch.written, resumed=True, time_left=time_left)


def refused_jobs(batch: Batch, runtime: Runtime, *, reason: str) -> NewJobs:
    """Every line of the batch as a refused row (the poller rejects it with the reason, counting it on the batch):
    the same job ids, order and times as the file's own jobs, from the batch record alone."""
    why = (
        f"the batch file s3://{batch.bucket}/{batch.key} changed or is gone since it was accepted, before this row "
        f"was queued ({reason}); upload it again to run the rows left"
    )
    jobs: NewJobs = []
    for index, (row, take, job_id) in enumerate(batch_job_ids(batch)):
        takes = int(batch.row_takes[row - 1])
        at = batch.created_at + index * ROW_SPACING_SECONDS
        ref = BatchRowRef(
            batch_id=batch.batch_id,
            batch_key=batch.key,
            row=row,
            record_id=str(row),
            take=take,
            takes=takes,
            image_keys=[],
            mode=ImageMode.FIRST_FRAME.value,
            refusal=f"row {row}: {why}",
        )
        job = Job(
            job_id=job_id,
            status=JobStatus.WAITING,
            source_bucket=batch.bucket,
            source_key=row_source_key(batch.key, str(row), take, takes),
            created_at=at,
            updated_at=at,
            next_check_at=at,
            batch=ref,
        )
        jobs.append((job, due_shard_for(job_id, runtime.settings.due_index_shards), None))
    return jobs
