"""A final's inputs: the approved draft it names (by job id or sidecar), checked before anything is paid for.

The final is a job of its own (its own upload, slot, budget and outputs); what it sends is the draft's task id. A
draft that is not one, not finished, or another stack's cannot be finalized, and the refusal says why.
"""

from __future__ import annotations

import posixpath

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import DraftLink, Job, JobStatus, VideoRequest
from seedance_pipeline.rules.draft_request import final_request
from seedance_pipeline.rules.manifests import JobManifest
from seedance_pipeline.rules.video_request import RESOLUTIONS
from seedance_pipeline.runtime import Runtime


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.INVALID_MANIFEST)


def final_request_for(job: Job, manifest: JobManifest, runtime: Runtime) -> VideoRequest:
    """The request of the final `manifest` describes, from its draft's record."""
    settings = runtime.settings
    if settings.provider_api != "ark":
        raise _refuse(
            "the unified gateway format cannot carry a draft's final (the draft_task item): ProviderApi=ark can"
        )
    draft = _draft_job(job, manifest, runtime)
    if draft.status is not JobStatus.SUCCEEDED or draft.request is None or draft.task_id is None:
        raise _refuse(f"job {draft.job_id} is {draft.status.value}: only a delivered draft can be finalized")
    if not draft.request.draft:
        raise _refuse(f"job {draft.job_id} is not a draft (it was made without draft: true); nothing to finalize")
    resolution = manifest.resolution or settings.resolution
    if resolution not in RESOLUTIONS:
        raise _refuse(f"the manifest's 'resolution' is {resolution!r}; allowed: {', '.join(RESOLUTIONS)}")
    # The final is billed at its own resolution: the model must offer it (a draft's 480p says nothing of that).
    spec = settings.model_catalogue.get(draft.request.model)
    if spec is None or resolution not in spec.resolutions:
        offered = ", ".join(spec.resolutions) if spec else "none (no longer allowed here)"
        raise _refuse(f"model {draft.request.model} offers {offered}, not {resolution}, for the final")
    outputs = draft.outputs
    link = DraftLink(
        job_id=draft.job_id,
        task_id=draft.task_id,
        bucket=outputs.bucket if outputs else None,
        sidecar_key=outputs.sidecar_key if outputs else None,
    )
    return final_request(
        draft.request,
        link,
        resolution=resolution,
        watermark=settings.watermark if manifest.watermark is None else manifest.watermark,
        last_frame=settings.return_last_frame if manifest.return_last_frame is None else manifest.return_last_frame,
    )


def _draft_job(job: Job, manifest: JobManifest, runtime: Runtime) -> Job:
    if manifest.draft_job is not None:
        found = runtime.store.get(manifest.draft_job)
        if found is None:
            raise _refuse(f"the manifest's 'draft_job' ({manifest.draft_job}) is not a job of this pipeline")
        return found
    assert manifest.draft_sidecar is not None
    bucket = runtime.settings.output_bucket or job.source_bucket
    key = manifest.draft_sidecar.lstrip("/")
    if not key.startswith(runtime.settings.output_prefix) or ".." in key.split("/"):
        raise _refuse(f"the manifest's 'draft_sidecar' must name a sidecar under {runtime.settings.output_prefix!r}")
    sidecar = runtime.storage.read_json(bucket, key) if posixpath.basename(key).endswith(".json") else None
    job_id = sidecar.get("job_id") if sidecar else None
    if not isinstance(job_id, str):
        raise _refuse(f"the manifest's 'draft_sidecar' ({key}) is not a sidecar in s3://{bucket}")
    found = runtime.store.get(job_id)
    if found is None:
        raise _refuse(f"the sidecar {key} names job {job_id}, which this pipeline no longer holds")
    return found
