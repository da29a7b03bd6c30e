"""Draft, then final (docs/outputs.md, "Drafts"): what a draft's sidecar tells a person, and the final's request.

A draft is a cheap 480p task (`draft: true`, on the models whose row has `draft`). Its final is a task of its own
whose content is the draft's `draft_task` item alone: the draft holds the prompt, the images and the seed, so the
final sends only what a final may change (resolution, watermark, the last frame) besides the model.
"""

from __future__ import annotations

from typing import Any

from seedance_pipeline.models import DraftLink, Job, VideoRequest

FINALIZE_COMMAND = "seedance-pipeline jobs finalize"


def finalize_instructions(job_id: str, task_id: str | None) -> dict[str, Any]:
    """The sidecar's `draft` block for a delivered draft: the one command, or the one small manifest, for its final."""
    return {
        "task_id": task_id,
        "finalize": {
            "command": f"{FINALIZE_COMMAND} {job_id} [--resolution 1080p]",
            "manifest": {"draft_job": job_id, "resolution": "1080p"},
        },
    }


def draft_block(job: Job) -> dict[str, Any] | None:
    """For a sidecar and an event: a draft says how to make its final; a final names the draft it was made from."""
    if job.request is not None and job.request.draft:
        return finalize_instructions(job.job_id, job.task_id)
    if job.request is not None and job.request.draft_of is not None:
        return {"of": job.request.draft_of.model_dump()}
    return None


def final_request(
    draft: VideoRequest, link: DraftLink, *, resolution: str, watermark: bool, last_frame: bool
) -> VideoRequest:
    """The final's request: the draft's, at the final's resolution, no longer a draft, naming the draft."""
    return draft.model_copy(
        update={
            "resolution": resolution,
            "draft": False,
            "watermark": watermark,
            "return_last_frame": last_frame,
            "draft_of": link,
        }
    )


def ark_final_body(request: VideoRequest, *, service_tier: str, expires_after: int | None) -> dict[str, Any]:
    """The native body of a final: the `draft_task` item alone (docs/provider-api.md, "Drafts")."""
    assert request.draft_of is not None
    body: dict[str, Any] = {
        "model": request.model,
        "content": [{"type": "draft_task", "draft_task": {"id": request.draft_of.task_id}}],
        "resolution": request.resolution,
        "watermark": request.watermark,
        "return_last_frame": request.return_last_frame,
        "service_tier": service_tier,
    }
    if request.output_format != "mp4":
        body["output_format"] = request.output_format
    if expires_after is not None:
        body["execution_expires_after"] = expires_after
    return body
