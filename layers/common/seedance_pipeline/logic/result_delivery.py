"""Copy a finished task's results into the output bucket: video, last frame, then the sidecar that vouches for them.

Visibility is all or nothing through one pointer. The video and the last frame go to names only this job writes
(`<name>.<ext>.<job tag>.mp4`); the sidecar, at the stable `<name>.<ext>.json`, is written last in one PUT and names
them. A reader that follows the sidecar sees either the previous job's whole set or this job's whole set: a
delivery that fails (or crashes) before the sidecar leaves the previous sidecar vouching only for its own objects.
Only after the switch are the previous job's media deleted (a re-upload replaces its outputs); a crash in between
leaves them in place, unnamed, rather than losing a paid video.
"""

from __future__ import annotations

from typing import Any

from seedance_pipeline.errors import DeliveryFailed, DownloadRefused, PipelineError, Superseded
from seedance_pipeline.models import Job, JobOutputs, TaskResult, iso_time
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.draft_request import draft_block
from seedance_pipeline.rules.keys import OutputKeys, output_base, output_keys
from seedance_pipeline.rules.token_estimate import billed_tokens
from seedance_pipeline.runtime import Runtime

_MAX_REASON_CHARS = 500
# The containers a request may ask for (`output_format`); the sidecar names the format beside the video's key.
VIDEO_CONTENT_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime"}
# Deliveries of one key that race for its sidecar: each lost race re-reads it, so a few tries settle any real one.
_SWITCH_TRIES = 3


def deliver_results(
    job: Job, result: TaskResult, runtime: Runtime, *, replaced_by_newer: bool = False
) -> tuple[JobOutputs, list[str]]:
    """Stream the results into S3. Raises ResultExpired/ResultUnavailable/DownloadRefused/DeliveryFailed for the
    caller to judge; an error no adapter classified becomes DeliveryFailed so it counts as an attempt.

    `replaced_by_newer`: a newer upload of the key owns its outputs. The media are still stored (the task is paid
    for), at this job's own names, and Superseded names them; the sidecar is left alone."""
    try:
        return _deliver(job, result, runtime, replaced_by_newer)
    except PipelineError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:_MAX_REASON_CHARS]
        raise DeliveryFailed(f"could not deliver the results ({reason})") from exc


def _deliver(job: Job, result: TaskResult, runtime: Runtime, replaced_by_newer: bool) -> tuple[JobOutputs, list[str]]:
    settings = runtime.settings
    if result.malformed_url or not result.video_url:
        raise DownloadRefused(
            "the provider reported success but gave no usable video URL"
            + (" (the URL field is not a string)" if result.malformed_url else "")
        )
    video_format = job.request.output_format if job.request else "mp4"
    keys, bucket = _outputs_of(job, runtime)
    notes: list[str] = []

    deadline = runtime.delivery_deadline()
    with runtime.downloader.open(result.video_url, max_bytes=settings.max_video_bytes, deadline=deadline) as stream:
        runtime.storage.upload_stream(stream, bucket, keys.video, content_type=VIDEO_CONTENT_TYPES[video_format])

    last_frame_key = None
    if job.request is not None and job.request.return_last_frame:
        if result.last_frame_url:
            with runtime.downloader.open(
                result.last_frame_url, max_bytes=settings.max_last_frame_bytes, deadline=deadline
            ) as stream:
                runtime.storage.upload_stream(stream, bucket, keys.last_frame, content_type="image/png")
            last_frame_key = keys.last_frame
        else:
            notes.append("a last frame was asked for, but the provider's answer carried no last-frame URL")

    outputs = JobOutputs(bucket=bucket, video_key=keys.video, last_frame_key=last_frame_key, sidecar_key=keys.sidecar)
    kept = f"this job's paid video is kept, named by no sidecar, at s3://{bucket}/{keys.video}"
    if last_frame_key:
        kept += f" (last frame s3://{bucket}/{last_frame_key})"
    named_this_job = False
    for _ in range(_SWITCH_TRIES):
        previous, etag = runtime.storage.read_json_tagged(bucket, keys.sidecar)
        # A delivery of this job that died after its sidecar's PUT left the key's outputs naming this set: it was
        # delivered, and a newer upload's delivery retires it as it does any older upload's. Kept "at this job's
        # own key" instead, it would be deleted by that retirement while the job's error still pointed to it.
        names_this_job = previous is not None and previous.get("job_id") == job.job_id
        if named_this_job and previous is not None and not names_this_job:
            # An earlier read named this job, and the switch that won since is another delivery's that judged its
            # upload newer: it retired this set as it retires any delivered older upload's. (A sidecar deleted
            # since reads as None, and is written again.)
            notes.append("a newer upload of this key delivered its outputs over this job's, delivered before")
            return outputs, notes
        named_this_job = named_this_job or names_this_job
        if replaced_by_newer and not names_this_job:
            raise Superseded(f"a newer upload of this key replaced this one while it was generating; {kept}")
        if previous is not None and _from_a_newer_upload(previous, job, runtime):
            raise Superseded(f"a newer upload of this key delivered its outputs first; {kept}")
        delivered_at = runtime.clock()
        # The switch: until this PUT lands, the sidecar (if any) still names the previous job's complete set. It
        # lands only on the sidecar read above: another delivery of the key that switched it since (the newest-upload
        # record cannot always tell, say when the newest upload was rejected) is read and judged again.
        document = sidecar_document(job, result, outputs, delivered_at, notes)
        if runtime.storage.replace_json(bucket, keys.sidecar, document, etag=etag):
            break
    else:
        raise DeliveryFailed(f"the key's sidecar changed under each of {_SWITCH_TRIES} switches; {kept}")
    if previous is not None and previous.get("job_id") != job.job_id:
        notes.extend(_retire(previous, keys, output_base(job.source_key, settings), bucket, runtime))
    notes.extend(_link_draft_to_final(job, outputs, runtime))
    return outputs, notes


def delivered_before(job: Job, runtime: Runtime) -> tuple[JobOutputs, int | None] | None:
    """The outputs (and billed tokens) the key's sidecar names for this job and task: a delivery of this job switched
    it and stopped before its job was recorded SUCCEEDED (the media are written before the sidecar names them, and
    only a newer upload's switch retires them). None when the sidecar names another job, or there is none."""
    keys, bucket = _outputs_of(job, runtime)
    sidecar = runtime.storage.read_json(bucket, keys.sidecar)
    if sidecar is None or sidecar.get("job_id") != job.job_id or sidecar.get("task_id") != job.task_id:
        return None
    named = _field(sidecar, "outputs")
    video, last_frame = named.get("video"), named.get("last_frame")
    if named.get("bucket") != bucket or not isinstance(video, str):
        return None
    outputs = JobOutputs(
        bucket=bucket,
        video_key=video,
        last_frame_key=last_frame if isinstance(last_frame, str) else None,
        sidecar_key=keys.sidecar,
    )
    billed = _field(sidecar, "tokens").get("billed")
    return outputs, billed if isinstance(billed, int) and not isinstance(billed, bool) else None


def _outputs_of(job: Job, runtime: Runtime) -> tuple[OutputKeys, str]:
    """The job's own output keys and the bucket they go to: where a delivery writes and where its sidecar is read."""
    video_format = job.request.output_format if job.request else "mp4"
    keys = output_keys(job.source_key, runtime.settings, job.job_id, video_format=video_format)
    return keys, runtime.settings.output_bucket or job.source_bucket


def _link_draft_to_final(job: Job, outputs: JobOutputs, runtime: Runtime) -> list[str]:
    """The draft's sidecar, once its final is delivered, names the final too (both ways). Best effort: the final
    is delivered whatever happens here, and its own sidecar names the draft."""
    link = job.request.draft_of if job.request else None
    if link is None or not link.bucket or not link.sidecar_key:
        return []
    try:
        draft_sidecar, etag = runtime.storage.read_json_tagged(link.bucket, link.sidecar_key)
        moved_on = [f"the draft's sidecar s3://{link.bucket}/{link.sidecar_key} now names another job; not linked"]
        if draft_sidecar is None or draft_sidecar.get("job_id") != link.job_id:
            return moved_on
        draft_sidecar["final"] = {"job_id": job.job_id, "task_id": job.task_id, "video": outputs.video_key,
                                  "sidecar": outputs.sidecar_key, "bucket": outputs.bucket}  # fmt: skip
        # Conditional on the sidecar read: a re-upload of the draft's image that switched it meanwhile is never
        # switched back to the draft's outputs by this link.
        if not runtime.storage.replace_json(link.bucket, link.sidecar_key, draft_sidecar, etag=etag):
            return moved_on
    except Exception as exc:  # the final's video is delivered: a missing back-link costs a look-up, not the video
        logger.warning("could not link the draft's sidecar to its final", extra={"error": type(exc).__name__})
        return [f"the draft's sidecar could not be linked to this final ({type(exc).__name__})"]
    return []


def _from_a_newer_upload(previous: dict[str, Any], job: Job, runtime: Runtime) -> bool:
    """Whether the sidecar's job came from a newer upload of the key than this job's. S3 sequencers of one key
    order by hex value once left-padded. Without both (a backfilled job has none), the object's own evidence
    decides: this job may replace the outputs only while its object is still the key's current one (same version,
    or unversioned the same ETag). One HeadObject, only on this rare path."""
    if previous.get("job_id") == job.job_id:
        return False
    theirs = _field(previous, "source").get("sequencer")
    if isinstance(theirs, str) and theirs and job.source_sequencer:
        return theirs.upper().rjust(64, "0") > job.source_sequencer.upper().rjust(64, "0")
    return not _still_current(job, runtime)


def _still_current(job: Job, runtime: Runtime) -> bool:
    current = runtime.storage.current(job.source_bucket, job.source_key)
    if current is None:
        return False  # deleted since: nothing shows this upload is the newer one
    if job.source_version_id:
        return current.version_id == job.source_version_id
    return bool(job.source_etag) and (current.etag or "").strip('"') == (job.source_etag or "").strip('"')


def _retire(previous: dict[str, Any], keys: OutputKeys, base: str, bucket: str, runtime: Runtime) -> list[str]:
    """Delete the media the previous sidecar named, now that nothing names them. Only this source's own names."""
    named = _field(previous, "outputs")
    if named.get("bucket") != bucket:
        return []
    ours = {keys.video, keys.last_frame, keys.sidecar}
    stale = [
        key
        for key in (named.get("video"), named.get("last_frame"))
        if isinstance(key, str) and key.startswith(f"{base}.") and key not in ours
    ]
    notes = []
    for key in stale:
        try:
            runtime.storage.delete(bucket, key)
        except Exception as exc:  # the new set is delivered; a leftover object costs storage, not correctness
            logger.warning("could not delete a replaced output", extra={"key": key, "error": type(exc).__name__})
            notes.append(f"the replaced output s3://{bucket}/{key} could not be deleted ({type(exc).__name__})")
    return notes


def _field(sidecar: dict[str, Any], name: str) -> dict[str, Any]:
    """A sidecar's nested object, or empty: a sidecar is a file a person may edit, and a field they made a string
    must not stop every later delivery of the key."""
    value = sidecar.get(name)
    return value if isinstance(value, dict) else {}


def sidecar_document(
    job: Job, result: TaskResult, outputs: JobOutputs, delivered_at: float, notes: list[str]
) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "task_id": job.task_id,
        "source": {
            "bucket": job.source_bucket,
            "key": job.source_key,
            "version_id": job.source_version_id,
            "sequencer": job.source_sequencer,
        },
        "request": job.request.model_dump() if job.request else None,
        "input_changes": job.input_changes,
        "outputs": {
            "video": outputs.video_key,
            "video_format": job.request.output_format if job.request else "mp4",
            "last_frame": outputs.last_frame_key,
            "sidecar": outputs.sidecar_key,
            "bucket": outputs.bucket,
        },
        "timings": {
            "uploaded_at": iso_time(job.created_at),
            "submitted_at": iso_time(job.submitted_at),
            "delivered_at": iso_time(delivered_at),
            "generation_seconds": round(delivered_at - job.submitted_at, 3) if job.submitted_at else None,
            "total_seconds": round(delivered_at - job.created_at, 3),
            "status_checks": job.checks,
        },
        "provider": {"status": result.raw_status, "usage": result.usage},
        "tokens": {"estimated": job.estimated_tokens, "billed": billed_tokens(result.usage)},
        "moderation": job.moderation.model_dump() if job.moderation else None,
        "resubmissions": job.resubmissions,
        "draft": draft_block(job),
        "notes": [*job.notes, *notes],
    }
