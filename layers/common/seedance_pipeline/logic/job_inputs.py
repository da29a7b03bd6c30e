"""What a job sends: its images (checked against the provider's rules) and its resolved request.

A plain upload is one image (a first frame) whose S3 metadata overrides the defaults; a manifest names one or two
frames, or reference images, and carries the overrides itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from seedance_pipeline.errors import ErrorCode, InvalidInput, ObjectGone
from seedance_pipeline.models import Job, VideoRequest
from seedance_pipeline.rules import image_rules
from seedance_pipeline.rules.manifests import (
    MAX_MANIFEST_BYTES,
    check_manifest_size,
    frame_keys,
    is_manifest,
    parse_manifest,
)
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.video_request import data_url, resolve_request
from seedance_pipeline.runtime import Runtime


@dataclass(frozen=True)
class InputImage:
    key: str
    version_id: str | None
    data: bytes
    format: str
    # (width, height) in pixels: `adaptive` and `keep_ratio` requests follow it, and so does their token estimate.
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class JobInputs:
    request: VideoRequest
    images: list[InputImage]
    # How the provider should read the images (a dialect with image roles needs it; the unified one sends a list).
    mode: ImageMode = ImageMode.FIRST_FRAME


def load_inputs(job: Job, runtime: Runtime) -> JobInputs:
    """Read and check everything the job needs. Raises InvalidInput or ObjectGone (both mean REJECTED)."""
    storage, settings = runtime.storage, runtime.settings
    if job.batch is not None:
        # A batch file's row: its fields were checked when the file was read and travel on the job.
        row = job.batch
        if row.refusal is not None:
            raise InvalidInput(row.refusal, code=ErrorCode.INVALID_BATCH)
        mode = ImageMode(row.mode)
        request = job.request or resolve_request(
            settings,
            row.overrides,
            mode=mode,
            image_count=len(row.image_keys),
            source="the row's",
            code=ErrorCode.INVALID_BATCH,
        )
        named_by = f"row {row.row} (id {row.record_id})"
        images = [_read_image(runtime, job.source_bucket, key, named_by=named_by) for key in row.image_keys]
        return JobInputs(request=request, images=images, mode=mode)
    if is_manifest(job.source_key):
        _, raw = storage.read(
            job.source_bucket,
            job.source_key,
            max_bytes=MAX_MANIFEST_BYTES,
            version_id=job.source_version_id,
            etag=job.source_etag,
            check_size=check_manifest_size,
        )
        manifest = parse_manifest(raw)
        keys = frame_keys(job.source_key, manifest, settings)
        request = job.request or resolve_request(
            settings,
            manifest.overrides(),
            mode=manifest.mode,
            image_count=len(keys),
            source="the manifest's",
            code=ErrorCode.INVALID_MANIFEST,
        )
        images = [_read_image(runtime, job.source_bucket, key) for key in keys]
        return JobInputs(request=request, images=images, mode=manifest.mode)

    info, data = storage.read(
        job.source_bucket,
        job.source_key,
        max_bytes=image_rules.MAX_IMAGE_BYTES,
        version_id=job.source_version_id,
        etag=job.source_etag,
        check_size=image_rules.check_size,
    )
    checked = image_rules.inspect_image(data)
    request = job.request or resolve_request(settings, info.metadata)
    image = InputImage(job.source_key, job.source_version_id, data, checked.format, (checked.width, checked.height))
    return JobInputs(request=request, images=[image])


def _read_image(runtime: Runtime, bucket: str, key: str, *, named_by: str | None = None) -> InputImage:
    try:
        _, data = runtime.storage.read(
            bucket, key, max_bytes=image_rules.MAX_IMAGE_BYTES, check_size=image_rules.check_size
        )
    except ObjectGone as exc:
        if named_by is not None:
            raise InvalidInput(
                f"{named_by}: 'image' names {key}, which does not exist", code=ErrorCode.INVALID_BATCH
            ) from exc
        raise InvalidInput(f"the manifest names {key}, which does not exist", code=ErrorCode.INVALID_MANIFEST) from exc
    try:
        checked = image_rules.inspect_image(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{key}: {exc.message}", code=exc.code) from exc
    return InputImage(key, None, data, checked.format, (checked.width, checked.height))


def image_urls(inputs: JobInputs, bucket: str, runtime: Runtime) -> list[str]:
    settings = runtime.settings
    if settings.image_delivery == "data-url":
        return [data_url(image.data, image.format) for image in inputs.images]
    return [
        runtime.storage.presign_get(
            bucket, image.key, version_id=image.version_id, expires_in=settings.presigned_url_seconds
        )
        for image in inputs.images
    ]
