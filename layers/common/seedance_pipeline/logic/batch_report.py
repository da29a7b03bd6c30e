"""A batch's end: when every job of a batch is terminal, its report is written and `Batch Completed` published.

Each row job's terminal save takes one from the batch's live count in the same transaction (JobStorePort
.save_counting_batch), so a job ending twice (a retried finish) counts once. Whoever sees the count at zero with
every row written writes the report (the same bytes, whoever writes it) and then claims the completion with a
conditional write that also records the event's contents and a publisher's lease (`publish_until`); the claimant
publishes, then clears the mark. The event is at least once, like a job's: a crash or a PutEvents fault between the
claim and the clear leaves the mark, and the job that ended last stays unfinished (in the due index) until then, so
the poll that retries it takes the publish over once the lease ran out and publishes the same event again.
Consumers dedupe on `batch_id`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from typing import Any

from seedance_pipeline.models import Batch, Job, iso_time
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.batch_files import row_job_id
from seedance_pipeline.rules.keys import output_base
from seedance_pipeline.runtime import Runtime

REPORT_FIELDS = (
    "id",
    "take",
    "row",
    "status",
    "reason",
    "video",
    "sidecar",
    "task_id",
    "tokens_estimated",
    "tokens_billed",
    "seconds",
    "job_id",
)


def report_keys(batch_key: str, runtime: Runtime) -> tuple[str, str]:
    base = output_base(batch_key, runtime.settings)
    return f"{base}.report.jsonl", f"{base}.report.csv"


def batch_job_ids(batch: Batch) -> list[tuple[int, int, str]]:
    """(row, take, job id) of every line of the batch, in file order."""
    return [
        (row, take, row_job_id(batch.batch_id, row, take))
        for row, takes in enumerate(batch.row_takes, start=1)
        for take in range(1, int(takes) + 1)
    ]


def report_lines(batch: Batch, jobs: dict[str, Job]) -> list[dict[str, Any]]:
    lines = []
    for row, take, job_id in batch_job_ids(batch):
        job = jobs.get(job_id)
        seconds = None
        if job is not None and job.finished_at is not None and job.submitted_at is not None:
            seconds = round(job.finished_at - job.submitted_at, 3)
        lines.append(
            {
                "id": job.batch.record_id if job is not None and job.batch else str(row),
                "take": take,
                "row": row,
                "status": job.status.value if job else "MISSING",
                "reason": (job.error.message if job.error else "") if job else "the row's job record is gone",
                "video": f"s3://{job.outputs.bucket}/{job.outputs.video_key}" if job and job.outputs else "",
                "sidecar": f"s3://{job.outputs.bucket}/{job.outputs.sidecar_key}" if job and job.outputs else "",
                "task_id": (job.task_id or "") if job else "",
                "tokens_estimated": job.estimated_tokens if job else None,
                "tokens_billed": job.billed_tokens if job else None,
                "seconds": seconds,
                "job_id": job_id,
            }
        )
    return lines


def render_jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def render_csv(lines: list[dict[str, Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=REPORT_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for line in lines:
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return out.getvalue().encode()


def days_at_budget(estimated_tokens: int, daily_budget: int) -> int | None:
    """UTC days the batch's estimated tokens take under DailyTokenBudget (None without a budget)."""
    return math.ceil(estimated_tokens / daily_budget) if daily_budget > 0 else None


def close_batch(batch_id: str, runtime: Runtime) -> bool:
    """Write the report and publish `Batch Completed` once every job ended; True if this call published it.

    Raises BatchStillBeingWritten while rows are still to be written, and BatchPublishPending while another
    finisher's publish may be under way: the caller's job stays unfinished (in the due index) and a later poll
    calls again."""
    store = runtime.store
    batch = store.get_batch(batch_id)
    if batch is None or (batch.completed_at is None and batch.remaining > 0):
        return False
    claimed = None
    if batch.completed_at is None:
        if not batch.all_written:
            raise BatchStillBeingWritten(f"batch {batch_id} is not recorded as written yet")
        claimed = _claim_completion(batch, runtime)
        if claimed is None:  # another finisher claimed it between our read and our claim
            batch = store.get_batch(batch_id) or batch
    if claimed is None:
        if batch.publish_until is None:
            return False  # completed and published
        claimed = _take_over_publish(batch, runtime)
    runtime.events.publish_batch(batch_event(claimed, runtime))
    # Conditional on our lease: a publisher that took over meanwhile clears it after its own publish.
    store.clear_batch_publish(batch_id, publish_until=_publish_until(claimed))
    logger.info("batch completed", extra={"batch_id": batch_id, "counts": claimed.counts})
    return True


def _claim_completion(batch: Batch, runtime: Runtime) -> Batch | None:
    """Write the report (the same bytes, whoever writes it), then claim the completion with the event's contents and
    a publisher's lease in one conditional write: the batch as claimed, or None when another finisher claimed it."""
    store = runtime.store
    lines = report_lines(batch, store.get_jobs([job_id for _, _, job_id in batch_job_ids(batch)]))
    jsonl_key, csv_key = report_keys(batch.key, runtime)
    bucket = report_bucket(batch, runtime)
    runtime.storage.upload_stream(
        io.BytesIO(render_jsonl(lines)), bucket, jsonl_key, content_type="application/x-ndjson"
    )
    runtime.storage.upload_stream(
        io.BytesIO(render_csv(lines)), bucket, csv_key, content_type="text/csv; charset=utf-8"
    )
    now = runtime.clock()
    counts = dict(sorted(Counter(str(line["status"]) for line in lines).items()))
    billed = sum(line["tokens_billed"] or 0 for line in lines)
    until = now + runtime.settings.claim_lease_seconds
    if not store.complete_batch(batch.batch_id, now=now, counts=counts, billed_tokens=billed, publish_until=until):
        return None
    return batch.model_copy(
        update={"completed_at": now, "counts": counts, "billed_tokens": billed, "publish_until": until}
    )


def _take_over_publish(batch: Batch, runtime: Runtime) -> Batch:
    """A completed batch whose event is not known to be published: take over its publish once the publisher's lease
    ran out (its publisher died, or PutEvents failed), else leave it to that publisher and raise."""
    now = runtime.clock()
    taken = None
    if _publish_until(batch) < now:
        taken = runtime.store.take_batch_publisher(
            batch.batch_id, now=now, lease_seconds=runtime.settings.claim_lease_seconds
        )
    if taken is None:
        raise BatchPublishPending(f"batch {batch.batch_id}'s completion is being published by another invocation")
    logger.warning(
        "publishing a completed batch's event that was not known to be published", extra={"batch_id": batch.batch_id}
    )
    return taken


def _publish_until(batch: Batch) -> float:
    assert batch.publish_until is not None
    return batch.publish_until


def report_bucket(batch: Batch, runtime: Runtime) -> str:
    """Beside the videos: the output bucket when one is set (result_delivery.py chooses the same way)."""
    return runtime.settings.output_bucket or batch.bucket


def batch_event(batch: Batch, runtime: Runtime) -> dict[str, Any]:
    """`Batch Completed`'s detail, from the batch record alone as its completion claim left it: the same event
    whoever publishes it, however often."""
    bucket = report_bucket(batch, runtime)
    jsonl_key, csv_key = report_keys(batch.key, runtime)
    return {
        "batch_id": batch.batch_id,
        "source": {"uri": f"s3://{batch.bucket}/{batch.key}", "bucket": batch.bucket, "key": batch.key},
        "rows": batch.rows,
        "jobs": batch.jobs,
        "counts": dict(batch.counts or {}),
        "refused_rows": batch.refused_rows,
        "tokens": {
            "estimated": batch.estimated_tokens,
            "billed": batch.billed_tokens or 0,
            "days_at_budget": days_at_budget(batch.estimated_tokens, runtime.settings.daily_token_budget),
        },
        "report": {"jsonl": f"s3://{bucket}/{jsonl_key}", "csv": f"s3://{bucket}/{csv_key}"},
        "timings": {"created_at": iso_time(batch.created_at), "completed_at": iso_time(batch.completed_at)},
    }


class BatchStillBeingWritten(Exception):
    """A batch's last job ended before the batch's rows were all recorded as written: retried by a later poll."""


class BatchPublishPending(Exception):
    """A completed batch's event is being published by another invocation whose lease has not run out yet."""
