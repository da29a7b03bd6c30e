"""A batch's end: when every job of a batch is terminal, its report is written and `Batch Completed` published once.

Each row job's terminal save takes one from the batch's live count in the same transaction (JobStorePort
.save_counting_batch), so a job ending twice (a retried finish) counts once. Whoever sees the count at zero with
every row written writes the report (the same bytes, whoever writes it) and then claims the completion with a
conditional write: only the claimant publishes the event.
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
    """Write the report and publish `Batch Completed` if every job ended and nobody did it yet; True if this did."""
    store = runtime.store
    batch = store.get_batch(batch_id)
    if batch is None or batch.completed_at is not None or batch.remaining > 0 or not batch.all_written:
        return False
    lines = report_lines(batch, store.get_jobs([job_id for _, _, job_id in batch_job_ids(batch)]))
    jsonl_key, csv_key = report_keys(batch.key, runtime)
    # Beside the videos: the output bucket when one is set (result_delivery.py chooses the same way).
    bucket = runtime.settings.output_bucket or batch.bucket
    runtime.storage.upload_stream(
        io.BytesIO(render_jsonl(lines)), bucket, jsonl_key, content_type="application/x-ndjson"
    )
    runtime.storage.upload_stream(
        io.BytesIO(render_csv(lines)), bucket, csv_key, content_type="text/csv; charset=utf-8"
    )
    now = runtime.clock()
    if not store.complete_batch(batch_id, now=now):
        return False
    counts = Counter(line["status"] for line in lines)
    billed = sum(line["tokens_billed"] or 0 for line in lines)
    runtime.events.publish_batch(
        {
            "batch_id": batch.batch_id,
            "source": {"uri": f"s3://{batch.bucket}/{batch.key}", "bucket": batch.bucket, "key": batch.key},
            "rows": batch.rows,
            "jobs": batch.jobs,
            "counts": dict(sorted(counts.items())),
            "refused_rows": batch.refused_rows,
            "tokens": {
                "estimated": batch.estimated_tokens,
                "billed": billed,
                "days_at_budget": days_at_budget(batch.estimated_tokens, runtime.settings.daily_token_budget),
            },
            "report": {"jsonl": f"s3://{bucket}/{jsonl_key}", "csv": f"s3://{bucket}/{csv_key}"},
            "timings": {"created_at": iso_time(batch.created_at), "completed_at": iso_time(now)},
        }
    )
    logger.info("batch completed", extra={"batch_id": batch_id, "counts": dict(counts)})
    return True
