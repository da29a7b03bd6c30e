"""The native Ark create body's `content` list: its item kinds and roles, and which mixes each model accepts.

Kinds (the vendor SDK's `CreateTaskContentParam`): `text`; `image_url`, `video_url`, `audio_url`, each
`{"url"}` with a `role`; and `draft_task` (`{"id"}`: the final render of an approved draft). Roles: images are
`first_frame` (may be left out for one image), `last_frame` or `reference_image`; videos `reference_video`; audio
`reference_audio`. A request is in one mode: a first frame, a first and a last frame, references (images, videos
and audio together, audio never alone), or a draft task alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import invalid_parameter
from .validation import ModelInfo

IMAGE_ROLES = ("first_frame", "last_frame", "reference_image")
MEDIA_ROLES = {"image_url": IMAGE_ROLES, "video_url": ("reference_video",), "audio_url": ("reference_audio",)}
KINDS = ("text", "image_url", "video_url", "audio_url", "draft_task")


@dataclass(frozen=True)
class ArkMedia:
    kind: str  # image_url, video_url or audio_url
    url: str
    role: str | None
    field: str  # where it sits in the body, for error messages


@dataclass(frozen=True)
class ArkContent:
    text: str
    images: tuple[ArkMedia, ...]
    videos: tuple[ArkMedia, ...]
    audios: tuple[ArkMedia, ...]
    draft_task_id: str | None
    mode: str  # first_frame, first_and_last, references or draft_task


def _media(item: dict[str, Any], kind: str, where: str) -> ArkMedia:
    inner = item.get(kind)
    url = inner.get("url") if isinstance(inner, dict) else None
    if not isinstance(url, str) or not url:
        raise invalid_parameter(f"{where}.{kind}.url", "must be a non-empty string (URL or data URL).")
    role = item.get("role")
    roles = MEDIA_ROLES[kind]
    if role is None and kind != "image_url":
        raise invalid_parameter(f"{where}.role", f"a {kind} item needs the role {roles[0]}.")
    if role is not None and role not in roles:
        raise invalid_parameter(f"{where}.role", f"must be one of {', '.join(roles)} for {kind} (got {role!r}).")
    return ArkMedia(kind, url, role, f"{where}.{kind}.url")


def parse_content(body: dict[str, Any]) -> tuple[str, list[ArkMedia], str | None]:
    """The text, the media items in body order, and the draft task id, each item checked on its own."""
    content = body.get("content")
    if content is None:
        raise invalid_parameter("content", "the field is required.")
    if not isinstance(content, list) or not content:
        raise invalid_parameter("content", "must be a non-empty array of content items.")
    texts: list[str] = []
    media: list[ArkMedia] = []
    drafts: list[str] = []
    for i, item in enumerate(content):
        where = f"content[{i}]"
        if not isinstance(item, dict):
            raise invalid_parameter(where, "must be an object.")
        kind = item.get("type")
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise invalid_parameter(f"{where}.text", "must be a string.")
            texts.append(text)
        elif kind in MEDIA_ROLES:
            media.append(_media(item, kind, where))
        elif kind == "draft_task":
            draft = item.get("draft_task")
            draft_id = draft.get("id") if isinstance(draft, dict) else None
            if not isinstance(draft_id, str) or not draft_id:
                raise invalid_parameter(f"{where}.draft_task.id", "must be the id of a draft task.")
            drafts.append(draft_id)
        else:
            raise invalid_parameter(f"{where}.type", f"must be one of {', '.join(KINDS)} (got {kind!r}).")
    if len(texts) > 1:
        raise invalid_parameter("content", "at most one text item is allowed.")
    if len(drafts) > 1:
        raise invalid_parameter("content", "at most one draft_task item is allowed.")
    return (texts[0] if texts else ""), media, (drafts[0] if drafts else None)


def _frames_mode(model: str, info: ModelInfo, images: list[ArkMedia]) -> tuple[str, list[ArkMedia]]:
    roles = [image.role for image in images]
    if len(images) == 1:
        if roles[0] == "last_frame":
            raise invalid_parameter("content", "a last_frame needs a first_frame too.")
        return "first_frame", images
    if len(images) == 2:
        if sorted(role or "" for role in roles) != ["first_frame", "last_frame"]:
            raise invalid_parameter(
                "content", "two images must carry the roles first_frame and last_frame (both are required)."
            )
        if not info.first_and_last:
            raise invalid_parameter("content", f"the model {model} does not support a first and a last frame.")
        return "first_and_last", images if roles[0] == "first_frame" else [images[1], images[0]]
    raise invalid_parameter("content", "at most one first_frame and one last_frame are allowed.")


def _references_mode(
    model: str, info: ModelInfo, images: list[ArkMedia], videos: list[ArkMedia], audios: list[ArkMedia]
) -> None:
    if any(image.role != "reference_image" for image in images):
        raise invalid_parameter("content", "reference items cannot be mixed with first_frame or last_frame.")
    for items, limit, what in (
        (images, info.max_reference_images, "reference_image"),
        (videos, info.max_reference_videos, "reference_video"),
        (audios, info.max_reference_audios, "reference_audio"),
    ):
        if items and limit == 0:
            raise invalid_parameter("content", f"the model {model} does not support {what}.")
        if len(items) > limit:
            raise invalid_parameter("content", f"the model {model} accepts at most {limit} {what} items.")
    if audios and not images and not videos:
        raise invalid_parameter("content", "reference_audio needs at least one reference image or video with it.")


def check_content(model: str, info: ModelInfo, body: dict[str, Any]) -> ArkContent:
    """The content list of a create body, checked against what `model` accepts."""
    text, media, draft_task_id = parse_content(body)
    images = [item for item in media if item.kind == "image_url"]
    videos = [item for item in media if item.kind == "video_url"]
    audios = [item for item in media if item.kind == "audio_url"]
    if draft_task_id is not None:
        if media:
            raise invalid_parameter("content", "a draft_task item stands alone: the draft already holds its inputs.")
        return ArkContent(text, (), (), (), draft_task_id, "draft_task")
    if not info.accepts_images:
        if media:
            raise invalid_parameter("content", f"the model {model} does not support image input (text-to-video only).")
        raise invalid_parameter("content", f"the model {model} is text-to-video only; this service needs an image.")
    if audios and not images and not videos:
        raise invalid_parameter("content", "reference_audio needs at least one reference image or video with it.")
    if not images:
        # The real platform renders text-to-video on most models; this simulator renders from an image only.
        raise invalid_parameter("content", "an image_url item is required for image-to-video.")
    if videos or audios or any(image.role == "reference_image" for image in images):
        _references_mode(model, info, images, videos, audios)
        return ArkContent(text, tuple(images), tuple(videos), tuple(audios), None, "references")
    mode, ordered = _frames_mode(model, info, images)
    return ArkContent(text, tuple(ordered), (), (), None, mode)
