"""EventBridge events on every terminal transition, for downstream pipelines (schema in docs/outputs.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.models import MAX_MESSAGE_CHARS, Job, JobStatus, cut, iso_time
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.draft_request import draft_block

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "seedance.pipeline"
# PutEvents refuses an entry over 256 KB (Detail, DetailType, Source, Resources and Time together); the detail
# keeps well below it so the rest of the entry always fits.
MAX_ENTRY_BYTES = 256 * 1024
MAX_DETAIL_BYTES = MAX_ENTRY_BYTES - 4 * 1024
DETAIL_TYPES = {
    JobStatus.SUCCEEDED: "Video Generation Succeeded",
    JobStatus.FAILED: "Video Generation Failed",
    JobStatus.REJECTED: "Video Generation Rejected",
    JobStatus.TIMED_OUT: "Video Generation Timed Out",
}
BATCH_COMPLETED = "Batch Completed"


def event_detail(job: Job) -> dict[str, Any]:
    outputs = None
    if job.outputs:
        outputs = {
            "video": f"s3://{job.outputs.bucket}/{job.outputs.video_key}",
            "last_frame": f"s3://{job.outputs.bucket}/{job.outputs.last_frame_key}"
            if job.outputs.last_frame_key
            else None,
            "sidecar": f"s3://{job.outputs.bucket}/{job.outputs.sidecar_key}",
        }
    return {
        "job_id": job.job_id,
        "task_id": job.task_id,
        "status": job.status.value,
        "source": {
            "uri": f"s3://{job.source_bucket}/{job.source_key}",
            "bucket": job.source_bucket,
            "key": job.source_key,
            "version_id": job.source_version_id,
        },
        "outputs": outputs,
        "request": job.request.model_dump() if job.request else None,
        "error": job.error.model_dump() if job.error else None,
        # What the provider's moderation flagged (what, code), also on a job a resubmission then finished.
        "moderation": job.moderation.model_dump() if job.moderation else None,
        "resubmissions": job.resubmissions,
        # A draft's event says how to finalize it; a final's names its draft (rules/draft_request.py).
        "draft": draft_block(job),
        "tokens": {"estimated": job.estimated_tokens, "billed": job.billed_tokens},
        # A job made from a batch file's row: the file, the user's record id, the row and the take.
        "batch": {
            "batch_id": job.batch.batch_id,
            "uri": f"s3://{job.source_bucket}/{job.batch.batch_key}",
            "id": job.batch.record_id,
            "row": job.batch.row,
            "take": job.batch.take,
        }
        if job.batch
        else None,
        "timings": {
            "created_at": iso_time(job.created_at),
            "submitted_at": iso_time(job.submitted_at),
            "finished_at": iso_time(job.finished_at),
            "seconds_total": round(job.finished_at - job.created_at, 3) if job.finished_at else None,
        },
    }


def detail_json(job: Job) -> str:
    """The event detail as sent: cut to fit EventBridge, with `"truncated": true` when anything was cut."""
    detail = event_detail(job)
    text = json.dumps(detail)
    if len(text.encode()) <= MAX_DETAIL_BYTES:
        return text
    slim = _cut_strings(detail, MAX_MESSAGE_CHARS)
    slim["truncated"] = True
    text = json.dumps(slim)
    if len(text.encode()) <= MAX_DETAIL_BYTES:
        return text
    # Pathological ids or keys: what identifies the job, cut hard, is still worth sending.
    return json.dumps(
        {**_cut_strings({k: detail[k] for k in ("job_id", "task_id", "status")}, 1024), "truncated": True}
    )


def _cut_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, dict):
        return {k: _cut_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v, limit) for v in value]
    return value


class JobEventPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, job: Job) -> None:
        detail_type = DETAIL_TYPES.get(job.status)
        if detail_type is None:
            return
        self._put(detail_type, detail_json(job))

    def publish_batch(self, detail: dict[str, Any]) -> None:
        """`Batch Completed`: a small detail of counts and report keys (docs/outputs.md), far below 256 KB. Raises
        when EventBridge did not take it: the batch's publish stays pending and a later poll sends the same event
        again (logic/batch_report.py), so a fault never loses it."""
        self._put(BATCH_COMPLETED, json.dumps(_cut_strings(detail, 2048)), strict=True)

    def _put(self, detail_type: str, detail: str, *, strict: bool = False) -> None:
        entry: PutEventsRequestEntryTypeDef = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": detail,
            "EventBusName": self._bus,
            "Resources": [],
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            logger.error("could not publish the job event", extra={"error": str(exc), "detail_type": detail_type})
            if strict:
                raise
            # The job's own record is the source of truth; a lost notification must not undo it.
            return
        if response.get("FailedEntryCount"):
            logger.error("EventBridge refused the job event", extra={"entries": response.get("Entries")})
            if strict:
                raise EventNotPublished(f"EventBridge refused the {detail_type} event: {response.get('Entries')}")


class EventNotPublished(Exception):
    """PutEvents answered, but with the entry refused (FailedEntryCount)."""


class NoEvents:
    def publish(self, job: Job) -> None:
        return None

    def publish_batch(self, detail: dict[str, Any]) -> None:
        return None
