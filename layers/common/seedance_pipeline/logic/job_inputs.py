"""What a job sends: its images (checked against the provider's rules) and its resolved request.

A plain upload is one image (a first frame) whose S3 metadata overrides the defaults; a manifest names one or two
frames, or reference images, and carries the overrides itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seedance_pipeline.errors import ErrorCode, InvalidInput, ObjectGone
from seedance_pipeline.models import Job, VideoRequest
from seedance_pipeline.rules import image_rules
from seedance_pipeline.rules.image_normalise import InputChange
from seedance_pipeline.rules.lookup_seed import with_lookup_seed
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
    # What was repaired before sending (image_rules.prepare_image): `data` is then a new JPEG, not the object at
    # `key`, so a presigned URL of the object would send the wrong picture.
    changes: tuple[InputChange, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class JobInputs:
    request: VideoRequest
    images: list[InputImage]
    # How the provider should read the images (a dialect with image roles needs it; the unified one sends a list).
    mode: ImageMode = ImageMode.FIRST_FRAME

    def input_changes(self) -> list[dict[str, Any]]:
        """The `input_changes` the job record and the sidecar carry: one entry per repair, naming its image."""
        return [entry for image in self.images for entry in image_rules.changes_record(image.key, list(image.changes))]


def load_inputs(job: Job, runtime: Runtime) -> JobInputs:
    """Read and check everything the job needs. Raises InvalidInput or ObjectGone (both mean REJECTED)."""
    storage, settings = runtime.storage, runtime.settings
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
        request = job.request or with_lookup_seed(
            resolve_request(
                settings,
                manifest.overrides(),
                mode=manifest.mode,
                image_count=len(keys),
                source="the manifest's",
                code=ErrorCode.INVALID_MANIFEST,
            ),
            job.job_id,
            settings.provider_api,
        )
        images = [_read_image(runtime, job.source_bucket, key) for key in keys]
        return JobInputs(request=request, images=images, mode=manifest.mode)

    info, data = storage.read(
        job.source_bucket,
        job.source_key,
        max_bytes=image_rules.MAX_UPLOAD_BYTES,
        version_id=job.source_version_id,
        etag=job.source_etag,
        check_size=image_rules.check_size,
    )
    image = _prepared(job.source_key, job.source_version_id, data)
    # The request as it is sent, seed included (rules/lookup_seed): the job records it, so does the sidecar.
    request = job.request or with_lookup_seed(
        resolve_request(settings, info.metadata), job.job_id, settings.provider_api
    )
    return JobInputs(request=request, images=[image])


def _read_image(runtime: Runtime, bucket: str, key: str) -> InputImage:
    try:
        _, data = runtime.storage.read(
            bucket, key, max_bytes=image_rules.MAX_UPLOAD_BYTES, check_size=image_rules.check_size
        )
    except ObjectGone as exc:
        raise InvalidInput(f"the manifest names {key}, which does not exist", code=ErrorCode.INVALID_MANIFEST) from exc
    try:
        return _prepared(key, None, data)
    except InvalidInput as exc:
        raise InvalidInput(f"{key}: {exc.message}", code=exc.code) from exc


def _prepared(key: str, version_id: str | None, data: bytes) -> InputImage:
    prepared = image_rules.prepare_image(data)
    info = prepared.info
    return InputImage(key, version_id, prepared.data, info.format, (info.width, info.height), tuple(prepared.changes))


def image_urls(inputs: JobInputs, bucket: str, runtime: Runtime) -> list[str]:
    """One URL per image. A repaired image always goes as a data URL, whatever ImageDelivery says: the object in
    S3 is the unrepaired upload, and the submit function may not write a repaired copy anywhere (read-only on
    the input prefix, by design). The repaired JPEG is under 30 MB like any image the provider takes."""
    settings = runtime.settings
    return [
        data_url(image.data, image.format)
        if settings.image_delivery == "data-url" or image.changed
        else runtime.storage.presign_get(
            bucket, image.key, version_id=image.version_id, expires_in=settings.presigned_url_seconds
        )
        for image in inputs.images
    ]
