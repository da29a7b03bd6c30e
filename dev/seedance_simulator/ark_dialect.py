"""The native Ark dialect (Volcengine Ark, BytePlus ModelArk): its create-body checks and its task answers.

Create: `{"model", "content": [text, image_url items with roles], <output settings>}`. Output settings are
top-level fields, or text flags after the prompt (`--rs 720p --rt 16:9 --dur 5 ...`, what older SDKs sent);
a top-level field wins over its flag. Every refusal is a 400 InvalidParameter naming the field, except an
unknown model (404 ModelNotOpen).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .dimensions import FPS, RATIOS, RESOLUTIONS, nearest_ratio
from .errors import invalid_parameter
from .tasks import CANCELLED, EXPIRED, FAILURE, IN_PROGRESS, NOT_START, QUEUED, SUCCESS, TaskRecord
from .validation import (
    MODELS,
    PROMPT_MAX_CHARS,
    GenerationRequest,
    _is_int,
    check_booleans,
    check_callback_url,
    check_model,
)

ARK_SEED_MIN, ARK_SEED_MAX = -1, 2**32 - 1
FRAMES_MIN, FRAMES_MAX = 29, 289  # and 25 + 4n
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 3600, 259_200, 172_800
SERVICE_TIERS = ("default", "flex")
ROLES = ("first_frame", "last_frame", "reference_image")
BOOL_FIELDS = ("camera_fixed", "watermark", "generate_audio", "return_last_frame")
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 10, 500

ARK_STATUS = {
    NOT_START: "queued",
    QUEUED: "queued",
    IN_PROGRESS: "running",
    SUCCESS: "succeeded",
    FAILURE: "failed",
    CANCELLED: "cancelled",
    EXPIRED: "expired",
}
ARK_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")

# Text flags, by their short and long spellings, to the top-level field each stands for.
_FLAGS = {
    "rs": "resolution",
    "resolution": "resolution",
    "rt": "ratio",
    "ratio": "ratio",
    "dur": "duration",
    "duration": "duration",
    "frames": "frames",
    "seed": "seed",
    "cf": "camera_fixed",
    "camerafixed": "camera_fixed",
    "wm": "watermark",
    "watermark": "watermark",
}
_FLAG = re.compile(r"(?:^|\s)--([a-z]+)\s+(\S+)")


@dataclass(frozen=True)
class ArkImage:
    url: str
    role: str | None
    field: str  # where it sits in the body, for error messages


def _flag_value(field: str, text: str) -> object:
    """A flag's text as the type its top-level field has; the field's own check then judges the value."""
    if field in BOOL_FIELDS:
        return {"true": True, "false": False}.get(text.lower(), text)
    if field in ("duration", "frames", "seed"):
        try:
            return int(text)
        except ValueError:
            return text
    return text


def split_flags(text: str) -> tuple[str, dict[str, object]]:
    """The prompt without its known `--flag value` pairs, and those pairs as top-level fields."""
    flags: dict[str, object] = {}

    def take(match: re.Match[str]) -> str:
        field = _FLAGS.get(match.group(1))
        if field is None:
            return match.group(0)  # not a flag the platform knows: it stays part of the prompt
        flags[field] = _flag_value(field, match.group(2))
        return ""

    return _FLAG.sub(take, text).strip(), flags


def _content(body: dict[str, Any]) -> tuple[str, list[ArkImage]]:
    content = body.get("content")
    if content is None:
        raise invalid_parameter("content", "the field is required.")
    if not isinstance(content, list) or not content:
        raise invalid_parameter("content", "must be a non-empty array of text and image_url items.")
    texts: list[str] = []
    images: list[ArkImage] = []
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
        elif kind == "image_url":
            image_url = item.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if not isinstance(url, str) or not url:
                raise invalid_parameter(f"{where}.image_url.url", "must be a non-empty string (URL or data URL).")
            role = item.get("role")
            if role is not None and role not in ROLES:
                raise invalid_parameter(f"{where}.role", f"must be one of {', '.join(ROLES)} (got {role!r}).")
            images.append(ArkImage(url, role, f"{where}.image_url.url"))
        else:
            raise invalid_parameter(f"{where}.type", f"must be text or image_url (got {kind!r}).")
    if len(texts) > 1:
        raise invalid_parameter("content", "at most one text item is allowed.")
    return (texts[0] if texts else ""), images


def _check_roles(model: str, images: list[ArkImage]) -> str:
    """Which image mode the request uses: first_frame, first_and_last or reference_images."""
    info = MODELS[model]
    roles = [image.role for image in images]
    if "reference_image" in roles:
        if any(role != "reference_image" for role in roles):
            raise invalid_parameter("content", "reference_image cannot be mixed with first_frame or last_frame.")
        if info.max_reference_images == 0:
            raise invalid_parameter("content", f"the model {model} does not support reference_image.")
        if len(images) > info.max_reference_images:
            raise invalid_parameter(
                "content", f"the model {model} accepts 1 to {info.max_reference_images} reference_image items."
            )
        return "reference_images"
    if len(images) == 1:
        if roles[0] == "last_frame":
            raise invalid_parameter("content", "a last_frame needs a first_frame too.")
        return "first_frame"
    if len(images) == 2:
        if sorted(role or "" for role in roles) != ["first_frame", "last_frame"]:
            raise invalid_parameter(
                "content", "two images must carry the roles first_frame and last_frame (both are required)."
            )
        if not info.first_and_last:
            raise invalid_parameter("content", f"the model {model} does not support a first and a last frame.")
        return "first_and_last"
    raise invalid_parameter("content", "at most one first_frame and one last_frame are allowed.")


def validate_ark_request(body: dict[str, Any]) -> tuple[GenerationRequest, list[ArkImage]]:
    """Check a create body the way the platform does. Returns the request and its images, first frame first."""
    model, info = check_model(body)
    text, images = _content(body)
    prompt, flags = split_flags(text)
    # Top-level fields win over the flags in the prompt.
    fields: dict[str, Any] = {**flags, **{k: v for k, v in body.items() if k not in ("model", "content")}}

    if not info.accepts_images:
        if images:
            raise invalid_parameter("content", f"the model {model} does not support image input (text-to-video only).")
        raise invalid_parameter("content", f"the model {model} is text-to-video only; this service needs an image.")
    if not images:
        raise invalid_parameter("content", "an image_url item is required for image-to-video.")
    mode = _check_roles(model, images)
    if mode == "first_and_last" and images[0].role != "first_frame":
        images = [images[1], images[0]]
    truncated = len(prompt) > PROMPT_MAX_CHARS
    prompt = prompt[:PROMPT_MAX_CHARS]

    resolution = fields.get("resolution", info.default_resolution)
    if resolution not in RESOLUTIONS:
        raise invalid_parameter("resolution", f"must be one of {', '.join(RESOLUTIONS)} (got {resolution!r}).")
    if mode == "reference_images" and resolution not in info.reference_resolutions:
        raise invalid_parameter(
            "resolution",
            f"with reference_image the model {model} offers {', '.join(info.reference_resolutions)} only.",
        )
    ratio = fields.get("ratio", "adaptive")
    if ratio not in RATIOS:
        raise invalid_parameter("ratio", f"must be one of {', '.join(RATIOS)} (got {ratio!r}).")

    frames = fields.get("frames")
    duration = fields.get("duration", 5)
    if frames is not None:
        if not _is_int(frames) or not FRAMES_MIN <= frames <= FRAMES_MAX or (frames - 25) % 4:
            raise invalid_parameter(
                "frames", f"must be 25 + 4n between {FRAMES_MIN} and {FRAMES_MAX} (got {frames!r})."
            )
        duration = max(1, round(frames / FPS))  # frames wins; duration only describes it
    elif not _is_int(duration) or duration not in info.durations:
        low, high = min(info.durations), max(info.durations)
        raise invalid_parameter("duration", f"the model {model} offers {low} to {high} seconds (got {duration!r}).")

    seed = fields.get("seed")
    if seed is not None and (not _is_int(seed) or not ARK_SEED_MIN <= seed <= ARK_SEED_MAX):
        raise invalid_parameter("seed", f"must be an integer between {ARK_SEED_MIN} and {ARK_SEED_MAX} (got {seed!r}).")

    flags_out = check_booleans(fields, BOOL_FIELDS)

    callback_url = check_callback_url("callback_url", fields.get("callback_url"))
    service_tier = fields.get("service_tier", "default")
    if service_tier not in SERVICE_TIERS:
        raise invalid_parameter("service_tier", f"must be one of {', '.join(SERVICE_TIERS)} (got {service_tier!r}).")
    expires = fields.get("execution_expires_after", EXPIRES_DEFAULT)
    if not _is_int(expires) or not EXPIRES_MIN <= expires <= EXPIRES_MAX:
        raise invalid_parameter(
            "execution_expires_after", f"must be an integer between {EXPIRES_MIN} and {EXPIRES_MAX} (got {expires!r})."
        )

    request = GenerationRequest(
        model=model,
        prompt=prompt,
        prompt_truncated=truncated,
        images=tuple(image.url for image in images),
        duration=duration,
        resolution=resolution,
        ratio=ratio,
        watermark=flags_out["watermark"],
        seed=seed,
        camerafixed=flags_out["camera_fixed"],
        return_last_frame=flags_out["return_last_frame"],
        generate_audio=flags_out["generate_audio"],
        frames=frames,
        service_tier=service_tier,
        execution_expires_after=expires,
        callback_url=callback_url,
        dialect="ark",
    )
    return request, images


def _error(task: TaskRecord) -> dict[str, str] | None:
    if task.status == FAILURE:
        code = "OutputVideoSensitiveContentDetected" if task.planned_failure else "InternalServiceError"
        return {"code": code, "message": task.fail_reason}
    if task.status == EXPIRED:
        return {"code": "TaskExpired", "message": task.fail_reason}
    return None


def ark_task_payload(
    task: TaskRecord, video_url: str, last_frame_url: str | None, status_override: str | None = None
) -> dict[str, Any]:
    """One task as Get, List and callbacks show it."""
    request = task.request
    ratio = request.ratio
    if ratio == "adaptive":
        ratio = nearest_ratio(task.image_width, task.image_height)  # the platform reports the ratio it chose
    succeeded = task.status == SUCCESS and status_override is None
    tokens = task.usage_tokens if succeeded else 0  # only successful videos are billed
    payload: dict[str, Any] = {
        "id": task.task_id,
        "model": request.model,
        "status": ARK_STATUS[task.status] if status_override is None else status_override,
        "error": _error(task) if status_override is None else None,
        "created_at": int(task.submitted_at),
        "updated_at": int(task.updated_at),
        "content": {},
        "seed": task.seed,
        "resolution": request.resolution,
        "ratio": ratio,
        "framespersecond": FPS,
        "service_tier": request.service_tier,
        "execution_expires_after": request.execution_expires_after,
        "usage": {"completion_tokens": tokens, "total_tokens": tokens},
    }
    if request.frames is not None:
        payload["frames"] = request.frames
    else:
        payload["duration"] = request.duration
    if succeeded:
        payload["content"] = {"video_url": video_url}
        if last_frame_url is not None:
            payload["content"]["last_frame_url"] = last_frame_url
    return payload


@dataclass(frozen=True)
class ListQuery:
    page_num: int
    page_size: int
    status: str | None
    task_ids: tuple[str, ...]
    model: str | None


def _positive_int(params: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    values = params.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise invalid_parameter(name, f"must be an integer (got {values[-1]!r}).") from None
    if not 1 <= value <= maximum:
        raise invalid_parameter(name, f"must be between 1 and {maximum} (got {value}).")
    return value


def _last(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_list_query(params: dict[str, list[str]]) -> ListQuery:
    status = _last(params, "filter.status")
    if status is not None and status not in ARK_STATUSES:
        raise invalid_parameter("filter.status", f"must be one of {', '.join(ARK_STATUSES)} (got {status!r}).")
    # Repeated, or comma-separated in one value: both reach the same set.
    task_ids = tuple(part for value in params.get("filter.task_ids", []) for part in value.split(",") if part)
    return ListQuery(
        page_num=_positive_int(params, "page_num", 1, 10_000),
        page_size=_positive_int(params, "page_size", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX),
        status=status,
        task_ids=task_ids,
        model=_last(params, "filter.model"),
    )


def select_tasks(tasks: list[TaskRecord], query: ListQuery) -> tuple[int, list[TaskRecord]]:
    """The matching tasks' total, and the requested page of them, newest first."""
    matching = [
        task
        for task in tasks
        if (query.status is None or ARK_STATUS[task.status] == query.status)
        and (not query.task_ids or task.task_id in query.task_ids)
        and (query.model is None or task.request.model == query.model)
    ]
    # Creation order breaks ties between tasks created within the same clock tick.
    order = {id(task): i for i, task in enumerate(tasks)}
    matching.sort(key=lambda task: (task.submitted_at, order[id(task)]), reverse=True)
    start = (query.page_num - 1) * query.page_size
    return len(matching), matching[start : start + query.page_size]
