"""Names derived from an upload: which keys we handle, the job id, the output keys."""

from __future__ import annotations

import hashlib
import posixpath

from pydantic import BaseModel

from seedance_pipeline.models import Upload
from seedance_pipeline.settings import Settings


class OutputKeys(BaseModel):
    video: str
    last_frame: str
    sidecar: str


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
    return None


def job_id_for(upload: Upload) -> str:
    """Deterministic: duplicate deliveries of one upload share it; a new upload of the key gets a new one."""
    identity = upload.version_id or upload.sequencer or upload.etag or ""
    digest = hashlib.sha256(f"{upload.bucket}\n{upload.key}\n{identity}".encode()).hexdigest()
    return digest[:32]


def output_keys(source_key: str, settings: Settings) -> OutputKeys:
    relative = source_key[len(settings.input_prefix) :] if source_key.startswith(settings.input_prefix) else source_key
    folder, filename = posixpath.split(relative)
    stem = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    base = posixpath.join(settings.output_prefix + folder, stem) if folder else settings.output_prefix + stem
    return OutputKeys(video=f"{base}.mp4", last_frame=f"{base}.last-frame.png", sidecar=f"{base}.json")


def due_shard_for(job_id: str, shards: int) -> str:
    return str(int(job_id[:8], 16) % shards)
