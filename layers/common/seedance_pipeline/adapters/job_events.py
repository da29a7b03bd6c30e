"""EventBridge events on every terminal transition, for downstream pipelines (schema in the README)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.models import Job, JobStatus, iso_time
from seedance_pipeline.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "seedance.pipeline"
DETAIL_TYPES = {
    JobStatus.SUCCEEDED: "Video Generation Succeeded",
    JobStatus.FAILED: "Video Generation Failed",
    JobStatus.REJECTED: "Video Generation Rejected",
    JobStatus.TIMED_OUT: "Video Generation Timed Out",
}


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
        "timings": {
            "created_at": iso_time(job.created_at),
            "submitted_at": iso_time(job.submitted_at),
            "finished_at": iso_time(job.finished_at),
            "seconds_total": round(job.finished_at - job.created_at, 3) if job.finished_at else None,
        },
    }


class JobEventPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, job: Job) -> None:
        detail_type = DETAIL_TYPES.get(job.status)
        if detail_type is None:
            return
        entry: PutEventsRequestEntryTypeDef = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(event_detail(job)),
            "EventBusName": self._bus,
            "Resources": [],
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            # The job's own record is the source of truth; a lost notification must not undo it.
            logger.error("could not publish the job event", extra={"error": str(exc), "detail_type": detail_type})
            return
        if response.get("FailedEntryCount"):
            logger.error("EventBridge refused the job event", extra={"entries": response.get("Entries")})


class NoEvents:
    def publish(self, job: Job) -> None:
        return None
