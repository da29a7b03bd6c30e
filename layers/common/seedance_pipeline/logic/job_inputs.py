"""What a job sends: its images (checked against the provider's rules) and its resolved request.

A plain upload is one image (a first frame) whose S3 metadata overrides the defaults; a manifest names one or two
frames, or reference images, videos and audio, and carries the overrides itself. A reference video or audio clip is
checked from its size and first bytes only (one ranged read), and sent by URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seedance_pipeline.errors import ErrorCode, InvalidInput, ObjectGone
from seedance_pipeline.logic.draft_final import final_request_for
from seedance_pipeline.models import BatchRowRef, Job, VideoRequest
from seedance_pipeline.rules import image_rules
from seedance_pipeline.rules.image_normalise import InputChange
from seedance_pipeline.rules.image_takes import metadata_takes
from seedance_pipeline.rules.lookup_seed import with_lookup_seed
from seedance_pipeline.rules.manifests import (
    MAX_MANIFEST_BYTES,
    check_manifest_size,
    frame_keys,
    is_manifest,
    media_keys,
    parse_manifest,
)
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.reference_media import (
    MAX_AUDIO_DATA_URL_BYTES,
    SIGNATURE_BYTES,
    MediaFormat,
    MediaKind,
    check_media,
)
from seedance_pipeline.rules.token_estimate import estimate_tokens
from seedance_pipeline.rules.video_request import data_url, media_data_url, resolve_request
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
class InputMedia:
    """A reference video or audio clip: never read whole; the provider fetches it from a presigned URL."""

    key: str
    format: MediaFormat
    size: int


@dataclass(frozen=True)
class JobInputs:
    request: VideoRequest
    images: list[InputImage]
    # How the provider should read the images (a dialect with image roles needs it; the unified one sends a list).
    mode: ImageMode = ImageMode.FIRST_FRAME
    # Reference videos, then audio clips, in the manifest's order.
    media: tuple[InputMedia, ...] = ()

    def input_changes(self) -> list[dict[str, Any]]:
        """The `input_changes` the job record and the sidecar carry: one entry per repair, naming its image."""
        return [entry for image in self.images for entry in image_rules.changes_record(image.key, list(image.changes))]


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
        images = [
            _read_own_image(runtime, job.source_bucket, row, key)
            if key == row.batch_key and (row.image_version_id or row.image_etag)
            else _read_image(runtime, job.source_bucket, key, named_by=named_by)
            for key in row.image_keys
        ]
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
        if manifest.is_final:  # no image of its own: the draft's task holds them
            return JobInputs(request=job.request or final_request_for(job, manifest, runtime), images=[])
        keys = frame_keys(job.source_key, manifest, settings)
        references = media_keys(job.source_key, manifest, settings)
        request = job.request or with_lookup_seed(
            resolve_request(
                settings,
                manifest.overrides(),
                mode=manifest.mode,
                image_count=len(keys),
                source="the manifest's",
                code=ErrorCode.INVALID_MANIFEST,
                video_count=sum(kind == MediaKind.VIDEO for _, _, kind in references),
                audio_count=sum(kind == MediaKind.AUDIO for _, _, kind in references),
            ),
            job.job_id,
            settings.provider_api,
        )
        # The cheap checks first: a wrong-kind video refuses the job before any image is decoded.
        media = tuple(_read_media(runtime, job.source_bucket, *reference) for reference in references)
        images = [_read_image(runtime, job.source_bucket, key) for key in keys]
        return JobInputs(request=request, images=images, mode=manifest.mode, media=media)

    info, data = storage.read(
        job.source_bucket,
        job.source_key,
        max_bytes=image_rules.MAX_UPLOAD_BYTES,
        version_id=job.source_version_id,
        etag=job.source_etag,
        check_size=image_rules.check_size,
    )
    _refuse_takes_here(info.metadata)
    image = _prepared(job.source_key, job.source_version_id, data)
    # The request as it is sent, seed included (rules/lookup_seed): the job records it, so does the sidecar.
    request = job.request or with_lookup_seed(
        resolve_request(settings, info.metadata), job.job_id, settings.provider_api
    )
    return JobInputs(request=request, images=[image])


def _refuse_takes_here(metadata: dict[str, str]) -> None:
    """An image whose metadata asks for several takes is made into them when its upload event arrives
    (logic/batch_intake.py); reaching this single-job path otherwise (a backfill, a retry, a fault reading the
    metadata on arrival) must not make one video where several were asked for."""
    takes = metadata_takes(metadata)
    if takes is not None and takes > 1:
        raise InvalidInput(
            f"metadata 'takes' asks for {takes} videos, which are made only when the image's upload event is "
            "handled (this job was made otherwise: a backfill, a retry, or a fault reading the metadata on "
            "arrival): upload the image again",
            code=ErrorCode.INVALID_METADATA,
        )


def _read_own_image(runtime: Runtime, bucket: str, row: BatchRowRef, key: str) -> InputImage:
    """A take of an image uploaded with metadata `takes`: the image as that upload announced it, never what the key
    holds now. Replaced or deleted since, the take is rejected (ObjectGone, no retry): the newer upload, if any,
    makes its own videos, and the uploader pays for no video of a picture they did not ask takes of."""
    try:
        _, data = runtime.storage.read(
            bucket,
            key,
            max_bytes=image_rules.MAX_UPLOAD_BYTES,
            version_id=row.image_version_id,
            etag=row.image_etag,
            check_size=image_rules.check_size,
        )
    except ObjectGone as exc:
        raise ObjectGone(
            f"s3://{bucket}/{key} was replaced or deleted since the upload that asked for "
            f"{row.takes} takes of it: take {row.take} is not made from a picture that upload did not announce"
        ) from exc
    try:
        return _prepared(key, row.image_version_id, data)
    except InvalidInput as exc:
        raise InvalidInput(f"{key}: {exc.message}", code=exc.code) from exc


def _read_image(runtime: Runtime, bucket: str, key: str, *, named_by: str | None = None) -> InputImage:
    try:
        _, data = runtime.storage.read(
            bucket, key, max_bytes=image_rules.MAX_UPLOAD_BYTES, check_size=image_rules.check_size
        )
    except ObjectGone as exc:
        if named_by is not None:
            raise InvalidInput(
                f"{named_by}: 'image' names {key}, which does not exist", code=ErrorCode.INVALID_BATCH
            ) from exc
        raise InvalidInput(f"the manifest names {key}, which does not exist", code=ErrorCode.INVALID_MANIFEST) from exc
    try:
        return _prepared(key, None, data)
    except InvalidInput as exc:
        raise InvalidInput(f"{key}: {exc.message}", code=exc.code) from exc


def _prepared(key: str, version_id: str | None, data: bytes) -> InputImage:
    prepared = image_rules.prepare_image(data)
    info = prepared.info
    return InputImage(key, version_id, prepared.data, info.format, (info.width, info.height), tuple(prepared.changes))


def _read_media(runtime: Runtime, bucket: str, field: str, key: str, kind: str) -> InputMedia:
    try:
        size, head = runtime.storage.read_head(bucket, key, length=SIGNATURE_BYTES)
    except ObjectGone as exc:
        raise InvalidInput(
            f"the manifest's '{field}' names {key}, which does not exist", code=ErrorCode.INVALID_MANIFEST
        ) from exc
    return InputMedia(key, check_media(field, key, MediaKind(kind), head, size), size)


def media_urls(inputs: JobInputs, bucket: str, runtime: Runtime) -> list[tuple[str, str]]:
    """(kind, URL) per reference video and audio clip. Videos go by URL only; a small audio clip may go as a data
    URL where the stack sends data URLs (read whole only then)."""
    settings = runtime.settings
    urls = []
    for media in inputs.media:
        kind = media.format.kind
        if kind is MediaKind.AUDIO and settings.image_delivery == "data-url" and media.size <= MAX_AUDIO_DATA_URL_BYTES:
            _, data = runtime.storage.read(bucket, media.key, max_bytes=MAX_AUDIO_DATA_URL_BYTES)
            urls.append((kind.value, media_data_url(data, media.format.content_type)))
            continue
        url = runtime.storage.presign_get(bucket, media.key, version_id=None, expires_in=settings.presigned_url_seconds)
        urls.append((kind.value, url))
    return urls


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


def with_request(job: Job, inputs: JobInputs, runtime: Runtime) -> Job:
    """The job with its resolved request, any note about it, and its token estimate (kept once made)."""
    request = inputs.request
    notes = list(job.notes)
    if request.prompt_truncated and not any("prompt" in n for n in notes):
        notes.append("the prompt was longer than 800 characters and was cut to 800")
    estimate = job.estimated_tokens
    if estimate is None:
        first_image = inputs.images[0].size if inputs.images else None
        spec = runtime.settings.model_catalogue.get(request.model)
        estimate = estimate_tokens(
            request.resolution,
            request.ratio,
            request.duration,
            first_image,
            longest_seconds=spec.longest_seconds if spec else None,  # duration -1: the model's longest
        )
    update = {"request": request, "notes": notes, "estimated_tokens": estimate}
    return job.model_copy(update={**update, "input_changes": inputs.input_changes()})
