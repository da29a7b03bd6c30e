"""Which uploads are batches, and their rows as read: a batch file's, a manifest's one row (`takes` in it), or a
plain image's one row (S3 metadata `takes`), each read pinned to the version its upload event announced."""

from __future__ import annotations

from seedance_pipeline.errors import InvalidInput, ObjectGone
from seedance_pipeline.models import Upload
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.batch_files import (
    MAX_BATCH_BYTES,
    BatchRow,
    check_batch_size,
    is_batch_file,
    manifest_rows,
    parse_batch,
)
from seedance_pipeline.rules.image_takes import asks_for_several, image_rows, refuse_takes_metadata
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.rules.manifests import MAX_MANIFEST_BYTES, check_manifest_size, is_manifest, parse_manifest
from seedance_pipeline.runtime import Runtime


def is_batch_upload(upload: Upload, runtime: Runtime) -> bool:
    """A batch file, a manifest asking for several takes, or a plain image whose S3 metadata asks for them (read
    here: the event says neither)."""
    if is_batch_file(upload.key):
        return True
    if is_manifest(upload.key):
        return asks_for_takes(upload, runtime)
    return image_asks_for_takes(upload, runtime)


def asks_for_takes(upload: Upload, runtime: Runtime) -> bool:
    """A manifest with `takes` over 1 is a batch of one row; so is one with S3 metadata `takes`, for the batch path
    to refuse it by name. Any problem reading it: no, and the single-upload path refuses it with its own reason."""
    try:
        info, data = runtime.storage.read(
            upload.bucket,
            upload.key,
            max_bytes=MAX_MANIFEST_BYTES,
            version_id=upload.version_id,
            etag=upload.etag,
            check_size=check_manifest_size,
        )
        return asks_for_several(info.metadata) or (parse_manifest(data).takes or 1) > 1
    except (InvalidInput, ObjectGone):
        return False


def image_asks_for_takes(upload: Upload, runtime: Runtime) -> bool:
    """A plain image with S3 metadata `takes` other than 1 is a batch of one row (a bad value too: the batch path
    refuses the upload naming it).

    The event carries no metadata: one HeadObject per plain image (about $0.0000004). The submit path's own read
    comes only after a single job is claimed under the upload's id, and turning that job into a batch would put two
    kinds of record under one id: a HEAD before the claim keeps the single path as it was."""
    try:
        info = runtime.storage.head(upload.bucket, upload.key, version_id=upload.version_id, etag=upload.etag)
    except Exception as exc:
        if runtime.store.get_batch(job_id_for(upload)) is not None:
            return True  # a duplicate delivery of an upload already taken as a batch: the batch path says so
        if isinstance(exc, ObjectGone):
            return False  # the single-upload path's pinned read refuses it as gone
        # Never lose an upload to a fault here (an escaped error would leave it to Lambda's two retries): the single
        # path claims it and records any fault of its own read for the poller to retry, and a job reached that way
        # refuses metadata `takes` over 1 by name (logic/job_inputs.py) rather than make one video of several.
        logger.exception("the image's metadata could not be read; it is taken as a single upload")
        return False
    return asks_for_several(info.metadata)


def read_batch_rows(upload: Upload, runtime: Runtime) -> list[BatchRow]:
    """The batch's rows: a batch file's, a manifest's one row, or a plain image's one row (metadata `takes`), read
    by the upload's version (or ETag): InvalidInput or ObjectGone when it cannot be read or parsed, or it is no
    longer the version announced."""
    settings = runtime.settings
    manifest = is_manifest(upload.key)
    if not manifest and not is_batch_file(upload.key):
        # A second HeadObject, for an image with `takes` only: the image itself is read when each take is sent.
        info = runtime.storage.head(upload.bucket, upload.key, version_id=upload.version_id, etag=upload.etag)
        return image_rows(upload.key, info.metadata, info.size, settings)
    check_size = check_manifest_size if manifest else check_batch_size
    if upload.size is not None:
        check_size(upload.size)
    info, data = runtime.storage.read(
        upload.bucket,
        upload.key,
        max_bytes=MAX_MANIFEST_BYTES if manifest else MAX_BATCH_BYTES,
        version_id=upload.version_id,
        etag=upload.etag,
        check_size=check_size,
    )
    if manifest:
        refuse_takes_metadata(info.metadata, what="a manifest", instead='put "takes": N in the manifest itself')
        return manifest_rows(upload.key, data, settings)
    refuse_takes_metadata(info.metadata, what="a batch file", instead="give each row its takes in a 'takes' column")
    return parse_batch(upload.key, data, settings)
