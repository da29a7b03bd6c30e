"""The native Ark dialect (Volcengine Ark, BytePlus ModelArk): its create-body checks and its task answers.

Create: `{"model", "content": [items, see ark_content.py], <settings>}`. Settings are top-level fields, or text
flags after the prompt (`--rs 720p --rt 16:9 --dur 5 ...`, what older SDKs sent); a top-level field wins over its
flag, and a field sent as JSON null counts as not sent (the vendor SDK sends every unset argument so). Every
refusal is a 400 InvalidParameter naming the field, except an unknown model (404 InvalidEndpointOrModel.NotFound).
The task document carries neither the prompt, nor the inputs, nor the callback URL.
"""

from __future__ import annotations

import re
from typing import Any

from .ark_content import ArkContent, check_content
from .ark_listing import ARK_STATUS, SERVICE_TIERS
from .dimensions import FPS, RATIOS, RESOLUTIONS, nearest_ratio
from .errors import ApiError, invalid_parameter
from .task_states import EXPIRED, FAILURE, SUCCESS
from .tasks import TaskRecord
from .validation import (
    MODELS,
    PROMPT_MAX_CHARS,
    GenerationRequest,
    ModelInfo,
    check_booleans,
    check_callback_url,
    is_int,
    model_field,
)

ARK_SEED_MIN, ARK_SEED_MAX = -1, 2**32 - 1
FRAMES_MIN, FRAMES_MAX = 29, 289  # and 25 + 4n
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 3600, 259_200, 172_800
DEFAULT_DURATION = 5
DRAFT_RESOLUTION = "480p"
SAFETY_IDENTIFIER_MAX = 64
BOOL_FIELDS = ("camera_fixed", "watermark", "generate_audio", "return_last_frame")

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


def check_ark_model(body: dict[str, Any]) -> tuple[str, ModelInfo]:
    """The body's model. An id the platform does not know is 404 InvalidEndpointOrModel.NotFound; ModelNotOpen
    means a model that exists but is not activated for the account (the knob `models_not_open`)."""
    model = model_field(body)
    info = MODELS.get(model)
    if info is None:
        raise ApiError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
            param="model",
        )
    return model, info


def _duration(model: str, info: ModelInfo, fields: dict[str, Any]) -> tuple[int, int | None]:
    """The clip's seconds and its exact frame count, if one was asked for (frames wins over duration)."""
    frames = fields.get("frames")
    if frames is not None:
        if not info.frames:
            raise invalid_parameter("frames", f"the model {model} does not support frames; send duration.")
        if not is_int(frames) or not FRAMES_MIN <= frames <= FRAMES_MAX or (frames - 25) % 4:
            raise invalid_parameter(
                "frames", f"must be 25 + 4n between {FRAMES_MIN} and {FRAMES_MAX} (got {frames!r})."
            )
        return max(1, round(frames / FPS)), frames  # duration only describes it
    duration = fields.get("duration", DEFAULT_DURATION)
    if duration == -1 and not isinstance(duration, bool) and info.duration_auto:
        # The model picks the length; the simulator picks the default, or the shortest the model offers.
        return (DEFAULT_DURATION if DEFAULT_DURATION in info.durations else min(info.durations)), None
    if not is_int(duration) or duration not in info.durations:
        low, high = min(info.durations), max(info.durations)
        auto = " or -1 (the model chooses)" if info.duration_auto else ""
        raise invalid_parameter(
            "duration", f"the model {model} offers {low} to {high} seconds{auto} (got {duration!r})."
        )
    return duration, None


def _resolution(model: str, info: ModelInfo, fields: dict[str, Any], mode: str, draft: bool) -> str:
    resolution = fields.get("resolution", DRAFT_RESOLUTION if draft else info.default_resolution)
    if resolution not in RESOLUTIONS:
        raise invalid_parameter("resolution", f"must be one of {', '.join(RESOLUTIONS)} (got {resolution!r}).")
    if resolution not in info.resolutions:
        raise invalid_parameter("resolution", f"the model {model} offers {', '.join(info.resolutions)} only.")
    if mode == "references" and resolution not in info.reference_resolutions:
        raise invalid_parameter(
            "resolution", f"with reference items the model {model} offers {', '.join(info.reference_resolutions)} only."
        )
    if draft and resolution != DRAFT_RESOLUTION:
        raise invalid_parameter("resolution", f"a draft is rendered at {DRAFT_RESOLUTION} only (got {resolution!r}).")
    return str(resolution)


def _extras(model: str, info: ModelInfo, fields: dict[str, Any]) -> dict[str, Any]:
    """The create arguments beyond the output settings: tier, expiry, priority, identity, task type."""
    service_tier = fields.get("service_tier", "default")
    if service_tier not in SERVICE_TIERS:
        raise invalid_parameter("service_tier", f"must be one of {', '.join(SERVICE_TIERS)} (got {service_tier!r}).")
    if service_tier == "flex" and not info.flex:
        raise invalid_parameter("service_tier", f"the model {model} has no flex tier.")
    expires = fields.get("execution_expires_after", EXPIRES_DEFAULT)
    if not is_int(expires) or not EXPIRES_MIN <= expires <= EXPIRES_MAX:
        raise invalid_parameter(
            "execution_expires_after", f"must be an integer between {EXPIRES_MIN} and {EXPIRES_MAX} (got {expires!r})."
        )
    priority = fields.get("priority")
    if priority is not None and not is_int(priority):
        raise invalid_parameter("priority", f"must be an integer (got {priority!r}).")
    identity = fields.get("safety_identifier")
    if identity is not None and (not isinstance(identity, str) or len(identity) > SAFETY_IDENTIFIER_MAX):
        raise invalid_parameter("safety_identifier", f"must be a string of at most {SAFETY_IDENTIFIER_MAX} characters.")
    task_type = fields.get("omni_reference_task_type")
    if task_type is not None:
        if not info.task_types:
            raise invalid_parameter("omni_reference_task_type", f"the model {model} has no task types.")
        if task_type not in info.task_types:
            raise invalid_parameter(
                "omni_reference_task_type", f"must be one of {', '.join(info.task_types)} (got {task_type!r})."
            )
    return {
        "service_tier": service_tier,
        "execution_expires_after": expires,
        "priority": priority,
        "safety_identifier": identity,
        "omni_reference_task_type": task_type,
    }


def validate_ark_request(body: dict[str, Any]) -> tuple[GenerationRequest, ArkContent]:
    """Check a create body the way the platform does. Returns the request and its content, first frame first."""
    # The vendor SDK sends every argument its caller left unset as JSON null: null means "not given".
    given = {key: value for key, value in body.items() if value is not None}
    model, info = check_ark_model(given)
    content = check_content(model, info, given)
    prompt, flags = split_flags(content.text)
    # Top-level fields win over the flags in the prompt.
    fields: dict[str, Any] = {**flags, **{k: v for k, v in given.items() if k not in ("model", "content")}}
    truncated = len(prompt) > PROMPT_MAX_CHARS
    prompt = prompt[:PROMPT_MAX_CHARS]

    flags_out = check_booleans(
        {"generate_audio": info.audio, **fields}, (*BOOL_FIELDS, "draft")
    )  # an audio model makes sound unless told not to
    if flags_out["camera_fixed"] and (not info.camera_fixed or content.mode == "references"):
        with_what = " with reference items" if info.camera_fixed else ""
        raise invalid_parameter("camera_fixed", f"the model {model} does not support camera_fixed{with_what}.")
    if flags_out["draft"] and not info.draft:
        raise invalid_parameter("draft", f"the model {model} has no draft mode.")
    resolution = _resolution(model, info, fields, content.mode, flags_out["draft"])
    ratio = fields.get("ratio", "adaptive")
    if ratio not in RATIOS:
        raise invalid_parameter("ratio", f"must be one of {', '.join(RATIOS)} (got {ratio!r}).")
    duration, frames = _duration(model, info, fields)
    seed = fields.get("seed")
    if seed is not None and (not is_int(seed) or not ARK_SEED_MIN <= seed <= ARK_SEED_MAX):
        raise invalid_parameter("seed", f"must be an integer between {ARK_SEED_MIN} and {ARK_SEED_MAX} (got {seed!r}).")
    callback_url = check_callback_url("callback_url", fields.get("callback_url"))

    request = GenerationRequest(
        model=model,
        prompt=prompt,
        prompt_truncated=truncated,
        images=tuple(image.url for image in content.images),
        duration=duration,
        resolution=resolution,
        ratio=ratio,
        watermark=flags_out["watermark"],
        seed=seed,
        camerafixed=flags_out["camera_fixed"],
        return_last_frame=flags_out["return_last_frame"],
        generate_audio=flags_out["generate_audio"],
        frames=frames,
        callback_url=callback_url,
        dialect="ark",
        draft=flags_out["draft"],
        draft_task_id=content.draft_task_id,
        reference_media=tuple(item.url for item in (*content.videos, *content.audios)),
        **_extras(model, info, fields),
    )
    return request, content


def _error(task: TaskRecord) -> dict[str, str] | None:
    if task.status == FAILURE:
        code = task.failure_code or (
            "OutputVideoSensitiveContentDetected" if task.planned_failure else "InternalServiceError"
        )
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
        "generate_audio": request.with_audio,
        "draft": request.draft,
        "service_tier": request.service_tier,
        "execution_expires_after": request.execution_expires_after,
        "usage": {"completion_tokens": tokens, "total_tokens": tokens},
    }
    if request.frames is not None:
        payload["frames"] = request.frames
    else:
        payload["duration"] = request.duration
    # Echoed only when the create set them; never the callback URL, the prompt or the inputs.
    for name in ("priority", "safety_identifier", "draft_task_id"):
        if getattr(request, name) is not None:
            payload[name] = getattr(request, name)
    if succeeded:
        payload["content"] = {"video_url": video_url}
        if last_frame_url is not None:
            payload["content"]["last_frame_url"] = last_frame_url
    return payload
