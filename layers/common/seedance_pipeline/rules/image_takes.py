"""S3 metadata `takes` on a plain image: N videos of the image's one request with N seeds, as a batch of one row.

The image's other metadata makes its request exactly as for a single upload (rules/video_request.py), checked
here once, so a bad value refuses the upload before anything is queued. The row is a manifest naming the image as
its first frame and carrying only what the metadata set, so the batch code resolves it with the same defaults and
gives each take its seed (rules/batch_files.take_seed): the metadata `seed`, or one derived, plus 0..N-1.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules import image_rules
from seedance_pipeline.rules.batch_files import BatchRow
from seedance_pipeline.rules.manifests import MAX_TAKES, frame_keys, manifest_from_fields
from seedance_pipeline.rules.video_request import MAX_SEED, decode_metadata_text, resolve_request
from seedance_pipeline.settings import Settings

TAKES = "takes"


def _lowered(metadata: Mapping[str, str]) -> dict[str, str]:
    return {key.lower().removeprefix("x-amz-meta-"): value for key, value in metadata.items()}


def metadata_takes(metadata: Mapping[str, str]) -> int | None:
    """The `takes` an upload's S3 metadata asks for; None when it names none. A value that is not a whole number
    from 1 to MAX_TAKES is refused, naming it."""
    raw = _lowered(metadata).get(TAKES)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_TAKES:
        raise InvalidInput(
            f"metadata 'takes' is {raw!r}; allowed: a whole number from 1 to {MAX_TAKES} "
            "(that many videos of this image, each with its own seed)",
            code=ErrorCode.INVALID_METADATA,
        )
    return int(text)


def asks_for_several(metadata: Mapping[str, str]) -> bool:
    """True when the metadata names `takes` with anything but 1: a bad value too, so the batch path refuses it."""
    raw = _lowered(metadata).get(TAKES)
    if raw is None:
        return False
    text = raw.strip()
    return not (text.isascii() and text.isdigit() and int(text) == 1)  # "01" is one take, as metadata_takes reads it


def refuse_takes_metadata(metadata: Mapping[str, str], *, what: str, instead: str) -> None:
    """A manifest or a batch file says its takes itself: S3 metadata asking for several is refused, not ignored
    (it would otherwise make fewer videos than the uploader asked for)."""
    if asks_for_several(metadata):
        raise InvalidInput(
            f"metadata 'takes' ({_lowered(metadata)[TAKES]!r}) is read on a plain image only, not on {what}: {instead}",
            code=ErrorCode.INVALID_METADATA,
        )


def image_rows(key: str, metadata: Mapping[str, str], size: int, settings: Settings) -> list[BatchRow]:
    """A plain image uploaded with metadata `takes`, as a batch of one row whose id is the image's name. Raises
    InvalidInput, naming the metadata field, for anything a single upload of the image would be refused for by
    its metadata or its size."""
    takes = metadata_takes(metadata) or 1
    image_rules.check_size(size)
    request = resolve_request(settings, metadata)
    meta = _lowered(metadata)
    if "seed" in meta and request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise InvalidInput(
            f"metadata 'seed' is {meta['seed']!r}; with 'takes' it must be a whole number from 0 to {MAX_SEED} "
            "(take N uses seed + N - 1)",
            code=ErrorCode.INVALID_METADATA,
        )
    fields: dict[str, Any] = {"first_frame": key}
    prompt = meta.get("prompt", "")
    if prompt.strip():
        fields["prompt"] = decode_metadata_text(prompt).strip()  # uncut: the row's job notes a cut, as a single one
    # Only what the metadata set, as the request resolved it (typed): the defaults are applied to each take.
    resolved = {
        "model": request.model,
        "resolution": request.resolution,
        "ratio": request.ratio,
        "duration": request.duration,
        "seed": request.seed,
        "watermark": request.watermark,
        "camerafixed": request.camerafixed,
        "return-last-frame": request.return_last_frame,
        "generate-audio": request.generate_audio,
        "draft": request.draft,
        "output-format": request.output_format,
    }
    for name, value in resolved.items():
        if name in meta and value is not None:
            fields[name.replace("-", "_")] = value
    manifest = manifest_from_fields(fields, what="the image's metadata")
    record_id = posixpath.basename(key).rsplit(".", 1)[0] or "1"
    return [
        BatchRow(
            row=1,
            record_id=record_id,
            takes=takes,
            manifest=manifest,
            image_keys=tuple(frame_keys(key, manifest, settings)),
        )
    ]
