"""`seedance-pipeline jobs finalize JOB [--resolution 1080p]`: turn an approved draft into its final.

The command writes one small manifest (`{"draft_job": JOB, "resolution": ...}`) beside the draft's upload, at
`<draft's key>.final.json`: its upload event makes the final a job of its own, with the budget, the slot and the
never-pay-twice rules of any job, and its own outputs and sidecar.
"""

from __future__ import annotations

import json

from seedance_local.operator_tools import OperatorError, Target, show_job
from seedance_pipeline.models import JobStatus
from seedance_pipeline.rules.video_request import RESOLUTIONS


class FinalizeRefused(OperatorError):
    """The job cannot be finalized (not a draft, not delivered, no input bucket)."""


def final_manifest_key(source_key: str) -> str:
    return f"{source_key}.final.json"


def finalize_draft(target: Target, job_id: str, *, resolution: str | None = None) -> tuple[str, dict[str, str]]:
    """Write the final's manifest for a delivered draft; returns its key and document."""
    job = show_job(target.store(), job_id)
    if job.status is not JobStatus.SUCCEEDED or job.request is None or not job.request.draft:
        what = "a draft" if job.request is not None and job.request.draft else "not a draft"
        raise FinalizeRefused(f"job {job.job_id} is {job.status.value} and {what}: only a delivered draft is finalized")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise FinalizeRefused(f"--resolution {resolution!r}: choose from {', '.join(RESOLUTIONS)}")
    document = {"draft_job": job.job_id}
    if resolution:
        document["resolution"] = resolution
    key = final_manifest_key(job.source_key)
    target.client("s3").put_object(
        Bucket=job.source_bucket, Key=key, Body=json.dumps(document).encode(), ContentType="application/json"
    )
    return key, document
