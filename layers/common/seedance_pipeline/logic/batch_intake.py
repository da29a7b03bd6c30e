"""Batch uploads in the submit function: claim the batch once, then write its rows as WAITING jobs in bulk.

Nothing here calls the provider: the rows go through the poller's admission (MaxInFlight, the daily budget, the
provider's throttles) like any waiting upload, in file order (their `created_at` follows the file). Every row's job
id is derived from the batch upload's identity, its row and its take, so a duplicate event finds the batch record
and stops, and a write that died half-way is resumed from the count it recorded, without overwriting a row that
was already written (see adapters/batch_items.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from seedance_pipeline.errors import AlreadyClaimed, ErrorCode, InvalidInput, LeaseLost, ObjectGone
from seedance_pipeline.logic.batch_reading import read_batch_rows
from seedance_pipeline.logic.batch_report import days_at_budget
from seedance_pipeline.logic.job_lifecycle import finish
from seedance_pipeline.models import WRITER_GRACE_SECONDS, Batch, BatchRowRef, Job, JobStatus, Upload, UploadDisposition
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.batch_files import (
    BatchRow,
    is_batch_file,
    row_job_id,
    take_seed,
)
from seedance_pipeline.rules.keys import check_output_keys, due_shard_for, job_id_for
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.row_requests import RowRequests
from seedance_pipeline.rules.token_estimate import estimate_tokens
from seedance_pipeline.runtime import Runtime

# Jobs written between two records of the writer's progress: a resumed write redoes at most this many, one
# conditional put each.
PROGRESS_EVERY = 500
# A writer starts a chunk only with this much left of its invocation and of its lease: a chunk takes seconds (at
# worst PROGRESS_EVERY conditional puts), so a writer is seldom killed mid-chunk or cut off by its lease. One whose
# request hangs past its lease sends nothing more, and is not taken over until it is surely dead: the store waits
# models.WRITER_GRACE_SECONDS after the lease.
CHUNK_SECONDS = 30.0
# Row jobs are ordered by created_at (the poller sends waiting jobs oldest first): this spacing keeps the file's
# order in a float, 10,000 jobs spanning one second.
ROW_SPACING_SECONDS = 1e-4

Accepted = tuple[JobStatus | UploadDisposition, str | None, str | None]


def row_source_key(batch_key: str, record_id: str, take: int, takes: int) -> str:
    """The key a row's outputs are named after: `<batch file>/<id>` (`.take<N>` with several takes), so the
    video lands at `<OutputPrefix><path>/<batch file>/<id>[.take<N>].<tag>.mp4` beside its sidecar."""
    return f"{batch_key}/{record_id}" + (f".take{take}" if takes > 1 else "")


def accept_batch(upload: Upload, runtime: Runtime, *, owner: str) -> Accepted:
    """(outcome, batch id, reason) for a batch file's upload (or a manifest asking for takes); the rows become
    jobs, or the whole file is refused."""
    settings, store = runtime.settings, runtime.store
    batch_id = job_id_for(upload)
    now = runtime.clock()
    existing = store.get_batch(batch_id)
    resume_from = 0
    if existing is not None:
        taken = store.take_batch_writer(batch_id, owner=owner, now=now, lease_seconds=settings.claim_lease_seconds)
        if taken is None:
            # Written whole, or half-written with its writer's lease (and grace) still live: not ours. A writer that
            # died is not waited for: the poller finds the batch in the due index and writes the rest then.
            logger.info("duplicate delivery of a batch ignored", extra={"key": upload.key, "batch_id": batch_id})
            return UploadDisposition.DUPLICATE, batch_id, None
        existing, resume_from = taken, taken.written
        logger.warning("resuming a batch write that stopped half-way", extra={"batch_id": batch_id})
    elif not is_batch_file(upload.key) and store.get(batch_id) is not None:
        # A manifest or an image asking for takes whose earlier delivery went the single way (its read or HEAD met
        # a fault) and was refused there, telling the uploader to upload again: making the takes now would pay twice.
        logger.info("duplicate delivery of an upload already refused", extra={"key": upload.key, "job_id": batch_id})
        return UploadDisposition.DUPLICATE, batch_id, None
    try:
        rows = read_batch_rows(upload, runtime)
    except (InvalidInput, ObjectGone) as exc:
        if existing is not None:
            # The file was read whole once already and is now refused (replaced, gone): the poller's resume ends the
            # rows left REJECTED by name (logic/batch_resume.py); it is handed the write at once (this writer is
            # alive and writes no more, so no grace is needed).
            logger.warning(
                "a batch file read again to resume its write is refused; the poller ends the rows left",
                extra={"batch_id": batch_id, "error": exc.message},
            )
            hand_over = now - WRITER_GRACE_SECONDS
            store.record_batch_progress(
                batch_id, owner=owner, written=existing.written, all_written=False, writer_until=hand_over
            )
            return UploadDisposition.DUPLICATE, batch_id, exc.message
        return _refuse_file(upload, batch_id, runtime, error=exc, owner=owner)
    created_at = existing.created_at if existing else now
    jobs = _jobs_for(upload, batch_id, rows, runtime, created_at)
    if existing is None:
        batch = _batch_record(upload, batch_id, rows, jobs, created_at, owner=owner, lease=settings.claim_lease_seconds)
        if not store.create_batch(batch):
            return UploadDisposition.DUPLICATE, batch_id, None
    else:
        batch = existing
    # Never closed here: every line is a job the poller ends, and the job that ends last closes the batch (it waits,
    # unfinished, for this write to be recorded whole). The submit function writes no outputs.
    time_left = runtime.time_left or (lambda: math.inf)
    write_jobs(batch, jobs, runtime, owner=owner, start=resume_from, resumed=existing is not None, time_left=time_left)
    queued = sum(1 for job, _, _ in jobs if job.batch is not None and job.batch.refusal is None)
    reason = (
        f"{batch.rows} rows, {queued} videos queued, {batch.refused_rows} rows refused; "
        f"{batch.estimated_tokens:,} tokens estimated"
    )
    days = days_at_budget(batch.estimated_tokens, settings.daily_token_budget)
    if days is not None:
        reason += f", about {days} day(s) at the DailyTokenBudget of {settings.daily_token_budget:,}"
    logger.info("batch accepted", extra={"batch_id": batch_id, "summary": reason})
    return JobStatus.WAITING, batch_id, reason


def chunk_seconds(runtime: Runtime) -> float:
    """The time a writer needs left to start a chunk (a quarter of a shorter claim lease, as tests set)."""
    return min(CHUNK_SECONDS, runtime.settings.claim_lease_seconds / 4)


def batch_jobs(
    upload: Upload, batch_id: str, rows: list[BatchRow], runtime: Runtime, created_at: float
) -> list[tuple[Job, str | None, float | None]]:
    """Every job of the batch in file order, as the first write made them: ids, order and times follow the file, so
    a resumed write (logic/batch_resume.py) writes the very jobs the dead writer would have."""
    return _jobs_for(upload, batch_id, rows, runtime, created_at)


def _refuse_file(
    upload: Upload, batch_id: str, runtime: Runtime, *, error: InvalidInput | ObjectGone, owner: str
) -> Accepted:
    """The whole file is refused: one REJECTED job record for the file itself, as for any bad upload."""
    now = runtime.clock()
    job = Job(
        job_id=batch_id,
        status=JobStatus.WAITING,
        source_bucket=upload.bucket,
        source_key=upload.key,
        source_version_id=upload.version_id,
        source_etag=upload.etag,
        created_at=now,
        updated_at=now,
        next_check_at=now + runtime.settings.claim_lease_seconds,
        lease_owner=owner,
        lease_until=now + runtime.settings.claim_lease_seconds,
    )
    try:
        runtime.store.claim(job, due_shard=due_shard_for(job.job_id, runtime.settings.due_index_shards))
    except AlreadyClaimed:
        return UploadDisposition.DUPLICATE, batch_id, None
    code = error.code if isinstance(error, InvalidInput) else ErrorCode.OBJECT_GONE
    done = finish(job, runtime, owner=owner, status=JobStatus.REJECTED, error_code=code, message=error.message)
    return done.status, batch_id, error.message


def _jobs_for(
    upload: Upload, batch_id: str, rows: list[BatchRow], runtime: Runtime, created_at: float
) -> list[tuple[Job, str | None, float | None]]:
    """Every job of the batch in file order, WAITING and due at once: each take of a valid row with its request
    resolved and its tokens estimated now; a refused row (or take) with its reason, for the poller to reject."""
    settings = runtime.settings
    requests = RowRequests(settings, source="the row's", code=ErrorCode.INVALID_BATCH)
    jobs: list[tuple[Job, str | None, float | None]] = []
    for row in rows:
        for take in range(1, (row.takes if row.error is None else 1) + 1):
            job_id = row_job_id(batch_id, row.row, take)
            at = created_at + len(jobs) * ROW_SPACING_SECONDS
            base = Job(
                job_id=job_id,
                status=JobStatus.WAITING,
                source_bucket=upload.bucket,
                source_key=row_source_key(upload.key, row.record_id, take, row.takes),
                source_version_id=None,
                created_at=at,
                updated_at=at,
                # Every line is a WAITING job due at once; a refused one is rejected by the poller with its reason.
                next_check_at=at,
            )
            job, error = _row_job(
                base, batch_id, upload.key, row, take, runtime, requests, version_id=upload.version_id, etag=upload.etag
            )
            if error is not None and job.batch is not None:
                job = job.model_copy(update={"batch": job.batch.model_copy(update={"refusal": error})})
            jobs.append((job, due_shard_for(job_id, settings.due_index_shards), None))
    return jobs


def _row_job(
    base: Job,
    batch_id: str,
    batch_key: str,
    row: BatchRow,
    take: int,
    runtime: Runtime,
    requests: RowRequests,
    *,
    version_id: str | None,
    etag: str | None,
) -> tuple[Job, str | None]:
    settings = runtime.settings
    # A takes image's row names the upload itself: each take reads it as announced (models.BatchRowRef).
    own_image = batch_key in row.image_keys
    overrides: dict[str, str] = {}
    if row.error is None and row.manifest is not None:
        overrides = row.manifest.overrides()
        seed = take_seed(batch_id, row, take)
        if seed is not None:
            overrides["seed"] = str(seed)
    ref = BatchRowRef(
        batch_id=batch_id,
        batch_key=batch_key,
        row=row.row,
        record_id=row.record_id,
        take=take,
        takes=row.takes,
        image_keys=list(row.image_keys),
        mode=(row.manifest.mode if row.manifest else ImageMode.FIRST_FRAME).value,
        overrides=overrides,
        image_version_id=version_id if own_image else None,
        image_etag=etag if own_image else None,
    )
    job = base.model_copy(update={"batch": ref})
    if row.error is not None or row.manifest is None:
        return job, row.error
    try:
        check_output_keys(job.source_key, settings)
        request = requests.resolve(overrides, mode=row.manifest.mode, image_count=len(row.image_keys))
    except InvalidInput as exc:
        return job, f"row {row.row} (id {row.record_id}): {exc.message}"
    spec = settings.model_catalogue.get(request.model)
    estimate = estimate_tokens(
        request.resolution,
        request.ratio,
        request.duration,
        None,
        longest_seconds=spec.longest_seconds if spec else None,
    )
    notes = ["the prompt was longer than 800 characters and was cut to 800"] if request.prompt_truncated else []
    return job.model_copy(update={"request": request, "estimated_tokens": estimate, "notes": notes}), None


def _batch_record(
    upload: Upload,
    batch_id: str,
    rows: list[BatchRow],
    jobs: list[tuple[Job, str | None, float | None]],
    created_at: float,
    *,
    owner: str,
    lease: float,
) -> Batch:
    live = [job for job, _, _ in jobs]
    refused_rows = {job.batch.row for job, _, _ in jobs if job.batch and job.batch.refusal is not None}
    per_row = Counter(job.batch.row for job, _, _ in jobs if job.batch)
    return Batch(
        batch_id=batch_id,
        bucket=upload.bucket,
        key=upload.key,
        version_id=upload.version_id,
        etag=upload.etag,
        created_at=created_at,
        rows=len(rows),
        jobs=len(jobs),
        row_takes="".join(str(per_row[row.row]) for row in rows),
        remaining=len(live),
        refused_rows=len(refused_rows),
        estimated_tokens=sum(job.estimated_tokens or 0 for job in live),
        writer_owner=owner,
        writer_until=created_at + lease,
    )


def write_jobs(
    batch: Batch,
    jobs: list[tuple[Job, str | None, float | None]],
    runtime: Runtime,
    *,
    owner: str,
    start: int,
    resumed: bool,
    time_left: Callable[[], float],
) -> bool:
    """Write the jobs from `start` on under the writer's lease, recording progress (which renews the lease); True
    when this writer recorded the last of them. A resumed write puts its first chunk conditionally (the writer that
    died may have written part of it) and the rest in bulk. With too little time left in the invocation or the lease
    for a chunk, it stops and hands the rest to the poller at once (logic/batch_resume.py): it is alive and sends no
    more, so it records a lease that ended WRITER_GRACE_SECONDS ago. A chunk cut off by its lease (a request hung)
    sends nothing more and hands nothing over: the lease and the grace must pass first, as for a writer that died."""
    store, lease = runtime.store, runtime.settings.claim_lease_seconds
    lease_until = batch.writer_until if batch.writer_until is not None else runtime.clock() + lease
    for begin in range(start, len(jobs), PROGRESS_EVERY):
        now = runtime.clock()
        if min(time_left(), lease_until - now) < chunk_seconds(runtime):
            logger.warning(
                "stopping a batch write short of time; the poller writes the rest",
                extra={"batch_id": batch.batch_id, "written": begin, "jobs": len(jobs)},
            )
            store.record_batch_progress(
                batch.batch_id, owner=owner, written=begin, all_written=False, writer_until=now - WRITER_GRACE_SECONDS
            )
            return False
        end = min(begin + PROGRESS_EVERY, len(jobs))
        try:
            store.put_new_jobs(
                jobs[begin:end],
                first_write=not (resumed and begin == start),
                lease_left=_lease_left(runtime, lease_until),
            )
        except LeaseLost:
            logger.warning(
                "a batch write ran past its writer's lease; the poller writes the rest once the writer is surely gone",
                extra={"batch_id": batch.batch_id, "written": begin, "jobs": len(jobs)},
            )
            return False
        lease_until = runtime.clock() + lease
        if not store.record_batch_progress(
            batch.batch_id, owner=owner, written=end, all_written=end == len(jobs), writer_until=lease_until
        ):
            # Another writer took over (this one outlived its lease and the grace): it writes the rest.
            logger.warning("lost the batch writer's lease; another invocation finishes the batch")
            return False
    if start >= len(jobs):
        return store.record_batch_progress(
            batch.batch_id, owner=owner, written=len(jobs), all_written=True, writer_until=runtime.clock()
        )
    return True


def _lease_left(runtime: Runtime, until: float) -> Callable[[], float]:
    return lambda: until - runtime.clock()
