"""Reference videos and audio (the 2.x family): what each file must be, checked before anything is paid for.

A file's kind is read from its first bytes (its signature), never from its name: a `.mp4` that is really a WAV is
refused here, not by the provider after a slot and a POST. The limits are the stricter reading of the sources in
docs/provider-api.md ("Reference videos and audio"): MP4 or MOV video up to 50 MB, MP3 or WAV audio up to 15 MB,
videos by URL only, audio never alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules.model_spec import ModelSpec, ProviderApi

# Enough bytes to tell every accepted format apart (an ISO-BMFF box header, a RIFF header, an ID3 tag).
SIGNATURE_BYTES = 64
MAX_VIDEO_BYTES = 50 * 1024 * 1024
MAX_AUDIO_BYTES = 15 * 1024 * 1024
# Audio may travel in the body as a data URL when the stack sends data URLs and the file is small: base64 grows it
# by a third and the whole body must stay well under the provider's request size.
MAX_AUDIO_DATA_URL_BYTES = 4 * 1024 * 1024
# `omni_reference_task_type`: what the 2.5 model does with its references (edit and extend need a video).
TASK_TYPES = ("reference", "edit", "extend")
TASK_TYPES_NEEDING_VIDEO = frozenset({"edit", "extend"})


class MediaKind(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True)
class MediaFormat:
    kind: MediaKind
    name: str  # mp4, mov, mp3, wav
    content_type: str


_MOV = MediaFormat(MediaKind.VIDEO, "mov", "video/quicktime")
_MP4 = MediaFormat(MediaKind.VIDEO, "mp4", "video/mp4")
_MP3 = MediaFormat(MediaKind.AUDIO, "mp3", "audio/mpeg")
_WAV = MediaFormat(MediaKind.AUDIO, "wav", "audio/wav")
# ISO-BMFF brands that are audio-only containers: an M4A is not a reference video.
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}


def sniff(head: bytes) -> MediaFormat | None:
    """The accepted format whose signature `head` starts with, or None (another format, or not media at all)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return None
        return _MOV if brand == b"qt  " else _MP4
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _WAV
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return _MP3  # an ID3 tag, or an MPEG audio frame sync with a layer set (ADTS AAC has layer bits 00)
    return None


def describe(head: bytes) -> str:
    """What the bytes look like, for a refusal: a person fixes a file faster when told what it really is."""
    if head[:4] == b"RIFF":
        return f"a RIFF {head[8:12].decode('ascii', 'replace').strip()} file"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return f"an ISO media file of brand {head[8:12].decode('ascii', 'replace').strip()!r}"
    for signature, name in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"OggS", "Ogg")):
        if head.startswith(signature):
            return name
    if head[:4] == b"fLaC":
        return "FLAC audio"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM file"
    return "not a recognised media file"


def check_media(field: str, key: str, kind: MediaKind, head: bytes, size: int) -> MediaFormat:
    """The file's format, or InvalidInput naming the manifest field, the key and what is wrong."""
    limit = MAX_VIDEO_BYTES if kind is MediaKind.VIDEO else MAX_AUDIO_BYTES
    if size > limit:
        raise InvalidInput(
            f"the manifest's '{field}' ({key}) is {size / 1024 / 1024:.1f} MB; a reference {kind.value} may be at "
            f"most {limit // 1024 // 1024} MB",
            code=ErrorCode.INVALID_MANIFEST,
        )
    found = sniff(head)
    if found is None or found.kind is not kind:
        allowed = "MP4 or MOV" if kind is MediaKind.VIDEO else "MP3 or WAV"
        what = f"{found.name.upper()} {found.kind.value}" if found else describe(head)
        raise InvalidInput(
            f"the manifest's '{field}' ({key}) must be {allowed} {kind.value}, but its content is {what}",
            code=ErrorCode.INVALID_MANIFEST,
        )
    return found


def check_size_for(kind: MediaKind, field: str, key: str) -> Callable[[int], None]:
    """A check_size callback for ObjectStoragePort.read: refuse from the object's size before reading its body."""

    def check(size: int) -> None:
        limit = MAX_VIDEO_BYTES if kind is MediaKind.VIDEO else MAX_AUDIO_BYTES
        if size > limit:
            check_media(field, key, kind, b"", size)

    return check


def check_references(
    spec: ModelSpec,
    *,
    images: int,
    videos: int,
    audio: int,
    task_type: str | None,
    provider_api: ProviderApi,
    code: ErrorCode,
) -> None:
    """Counts per model, "never audio alone", the 2.5 task types, and what the unified gateway cannot carry."""

    def refuse(reason: str) -> InvalidInput:
        return InvalidInput(reason, code=code)

    if provider_api == "unified" and (videos or audio or task_type):
        carried = [name for name, n in (("reference videos", videos), ("reference audio", audio)) if n]
        carried += ["a task type"] if task_type else []
        raise refuse(
            f"the unified gateway format carries images only, not {' or '.join(carried)}: send this manifest to a "
            "stack with ProviderApi=ark"
        )
    if videos > spec.max_reference_videos:
        raise refuse(f"model {spec.id} takes at most {spec.max_reference_videos} reference videos, not {videos}")
    if audio > spec.max_reference_audio:
        raise refuse(f"model {spec.id} takes at most {spec.max_reference_audio} reference audio clips, not {audio}")
    if audio and not images and not videos:
        raise refuse("reference audio needs at least one reference image or video: audio alone is never sent")
    if task_type is not None:
        if task_type not in spec.task_types:
            offered = ", ".join(spec.task_types) or "none"
            raise refuse(f"model {spec.id} takes no task type {task_type!r} (it offers: {offered})")
        if task_type in TASK_TYPES_NEEDING_VIDEO and not videos:
            raise refuse(f"task type {task_type!r} needs at least one reference video")
