"""Names derived from an upload: which keys we handle, the job id, the output keys."""

from __future__ import annotations

import hashlib
import posixpath

from pydantic import BaseModel

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Upload
from seedance_pipeline.settings import Settings

S3_MAX_KEY_BYTES = 1024
# Enough of the job id that two uploads of one key never share a media object name in practice (48 bits).
JOB_TAG_LENGTH = 12
JOB_ID_LENGTH = 32
# The last characters of a job id name its source: a batch row's are its batch's (rules/batch_files.row_job_id),
# a single upload's are its own, so waiting jobs can be taken in turns by source.
SOURCE_TAG_LENGTH = 8


def source_tag(job_id: str) -> str:
    return job_id[-SOURCE_TAG_LENGTH:]


class OutputKeys(BaseModel):
    video: str
    last_frame: str
    sidecar: str


# Reference videos and audio are never a job on their own: a manifest names them (rules/reference_media.py).
REFERENCE_MEDIA_SUFFIXES = (".mp4", ".mov", ".mp3", ".wav")


def ignore_reason(key: str, settings: Settings) -> str | None:
    """Why an object key is not ours to process, or None when it is."""
    if settings.output_prefix and key.startswith(settings.output_prefix):
        return f"under the output prefix {settings.output_prefix!r}"
    if not key.startswith(settings.input_prefix):
        return f"outside the input prefix {settings.input_prefix!r}"
    if key.endswith("/"):
        return "a folder placeholder"
    if key == settings.input_prefix or not posixpath.basename(key):
        return "no file name"
    if any(part.startswith("_") for part in key[len(settings.input_prefix) :].split("/")[:-1]):
        return "in a folder whose name starts with '_' (frames kept for manifests)"
    if key.lower().endswith(REFERENCE_MEDIA_SUFFIXES):
        return "a reference video or audio clip (used only when a manifest names it)"
    return None


def job_id_for(upload: Upload) -> str:
    """Deterministic: duplicate deliveries of one upload share it; a new upload of the key gets a new one."""
    identity = upload.version_id or upload.sequencer or upload.etag or ""
    digest = hashlib.sha256(f"{upload.bucket}\n{upload.key}\n{identity}".encode()).hexdigest()
    return digest[:JOB_ID_LENGTH]


def output_base(source_key: str, settings: Settings) -> str:
    """`<OutputPrefix><path>/<file name>`: the whole file name, extension included.

    Keeping the extension is what makes the mapping one-to-one: `a.jpg`, `a.png` and a manifest `a.json` beside
    them are three uploads with three sets of outputs, never one object written twice.
    """
    relative = source_key[len(settings.input_prefix) :] if source_key.startswith(settings.input_prefix) else source_key
    return settings.output_prefix + relative


def sidecar_key(source_key: str, settings: Settings) -> str:
    """The one stable name per upload key: the sidecar, written last, names the media objects of the job it vouches
    for. A reader reads the sidecar, then the objects it names."""
    return f"{output_base(source_key, settings)}.json"


def output_keys(source_key: str, settings: Settings, job_id: str, *, video_format: str = "mp4") -> OutputKeys:
    """Media objects carry the job's tag, so a job only ever writes objects no other job writes: a re-upload's
    delivery that fails half-way leaves the previous job's set whole, and the sidecar still names exactly that set."""
    base = output_base(source_key, settings)
    tag = job_id[:JOB_TAG_LENGTH]
    return OutputKeys(
        video=f"{base}.{tag}.{video_format}",
        last_frame=f"{base}.{tag}.last-frame.png",
        sidecar=sidecar_key(source_key, settings),
    )


def check_output_keys(source_key: str, settings: Settings) -> None:
    """Refuse, before anything is paid for, an upload whose output keys S3 would refuse (1,024 bytes of UTF-8)."""
    longest = output_keys(source_key, settings, "0" * JOB_ID_LENGTH).last_frame
    size = len(longest.encode())
    if size > S3_MAX_KEY_BYTES:
        raise InvalidInput(
            f"the output keys for this upload would be {size} bytes long (UTF-8), over S3's limit of "
            f"{S3_MAX_KEY_BYTES} bytes: use a shorter file name, folder path or OutputPrefix",
            code=ErrorCode.OUTPUT_KEY_TOO_LONG,
        )


# The due index's partition for batch records whose rows are not all written yet, due when their writer's lease runs
# out. Not a number, so never a job's shard (due_shard_for), and the poller's job queries (shards "0".."n-1") never
# read it.
BATCH_WRITES_SHARD = "batch-writes"


def due_shard_for(job_id: str, shards: int) -> str:
    return str(int(job_id[:8], 16) % shards)
