"""Request validation with the provider's rules and error answers (input images: input_images.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .dimensions import RATIOS, RESOLUTIONS
from .errors import ApiError, invalid_parameter

PROMPT_MAX_CHARS = 800
SEED_MAX = 2_147_483_647
DURATIONS = (5, 10)
BOOL_FIELDS = ("watermark", "camerafixed", "return_last_frame", "generate_audio")

CALLBACK_URL_MAX_CHARS = 2048


@dataclass(frozen=True)
class ModelInfo:
    accepts_images: bool
    max_images: int  # in the unified dialect's `images` list
    default_resolution: str
    # What the native Ark dialect checks as well (the same facts as the pipeline's model catalogue).
    first_and_last: bool = True
    max_reference_images: int = 0
    reference_resolutions: tuple[str, ...] = ("480p", "720p")
    durations: tuple[int, ...] = tuple(range(2, 13))
    audio: bool = False
    resolutions: tuple[str, ...] = RESOLUTIONS
    max_reference_videos: int = 0
    max_reference_audios: int = 0
    duration_auto: bool = False  # `duration: -1`: the model picks the length
    draft: bool = False  # `draft: true`: a cheap 480p preview, rendered in full later from a draft_task item
    flex: bool = True  # the `flex` service tier
    camera_fixed: bool = True  # the `camera_fixed` setting
    frames: bool = True  # the `frames` setting
    task_types: tuple[str, ...] = ()  # `omni_reference_task_type` values


_LOW_RES = ("480p", "720p")
# 2.0: up to 9 reference images, 3 videos and 3 audio clips, 4-15 s or -1, audio; no flex, camera_fixed, frames.
_SEEDANCE_2 = ModelInfo(
    True,
    9,
    "720p",
    max_reference_images=9,
    reference_resolutions=RESOLUTIONS,
    max_reference_videos=3,
    max_reference_audios=3,
    durations=tuple(range(4, 16)),
    duration_auto=True,
    audio=True,
    flex=False,
    camera_fixed=False,
    frames=False,
)
# 2.5: up to 30 s (no -1), many more references, the task types reference/edit/extend, a draft mode.
_SEEDANCE_2_5 = replace(
    _SEEDANCE_2,
    max_reference_images=30,
    max_reference_videos=10,
    max_reference_audios=10,
    durations=tuple(range(4, 31)),
    duration_auto=False,  # no source documents -1 for 2.5: refused, as the catalogue does
    task_types=("reference", "edit", "extend"),
    draft=True,
)

# Volcengine ids; BytePlus spells 1.x without `doubao-` and 2.x `dreamina-seedance-...` (BYTEPLUS_IDS below).
MODELS: dict[str, ModelInfo] = {
    # pro: text-to-video, or image-to-video from a first frame or a first and a last frame.
    "doubao-seedance-1-0-pro-250528": ModelInfo(True, 2, "1080p"),
    # pro-fast: a first frame only.
    "doubao-seedance-1-0-pro-fast-251015": ModelInfo(True, 1, "1080p", first_and_last=False),
    # lite i2v: first frame, first + last frame, or up to 4 reference images (no 1080p with those).
    "doubao-seedance-1-0-lite-i2v-250428": ModelInfo(True, 4, "720p", max_reference_images=4),
    # 1.5 pro: first frame or first + last, 4-12 s or -1, an audio track, a 480p draft mode.
    "doubao-seedance-1-5-pro-251215": ModelInfo(
        True, 2, "720p", durations=tuple(range(4, 13)), audio=True, duration_auto=True, draft=True, frames=False
    ),
    "doubao-seedance-2-0-260128": _SEEDANCE_2,
    "doubao-seedance-2-0-fast-260128": replace(_SEEDANCE_2, reference_resolutions=_LOW_RES, resolutions=_LOW_RES),
    # lite t2v: text only; an image request is a caller mistake.
    "doubao-seedance-1-0-lite-t2v-250428": ModelInfo(False, 0, "720p", first_and_last=False, durations=()),
}
# BytePlus ModelArk spells 1.x ids without the Volcengine prefix and 2.x ids `dreamina-seedance-...`.
BYTEPLUS_IDS = {
    name.removeprefix("doubao-") if "-1-" in name else name.replace("doubao-", "dreamina-", 1): info
    for name, info in MODELS.items()
}
MODELS.update(BYTEPLUS_IDS)
# 2.0 mini (the replacement of 1.5 pro on BytePlus), 2.5 and 2.5 flash: BytePlus ids only (flash: 480p/720p,
# no draft).
MODELS["dreamina-seedance-2-0-mini-260615"] = replace(_SEEDANCE_2, reference_resolutions=_LOW_RES, resolutions=_LOW_RES)
MODELS["dreamina-seedance-2-5-260628"] = _SEEDANCE_2_5
MODELS["dreamina-seedance-2-5-flash-261115"] = replace(
    _SEEDANCE_2_5, reference_resolutions=_LOW_RES, resolutions=_LOW_RES, draft=False
)


@dataclass(frozen=True)
class GenerationRequest:
    """A submit body that passed the field checks, with the provider's defaults filled in."""

    model: str
    prompt: str
    prompt_truncated: bool
    images: tuple[str, ...]
    duration: int
    resolution: str
    ratio: str
    watermark: bool
    seed: int | None
    camerafixed: bool
    return_last_frame: bool
    generate_audio: bool
    # Only the native Ark dialect sets these; the unified gateway has no such fields.
    frames: int | None = None  # an exact frame count, which wins over duration
    service_tier: str = "default"
    execution_expires_after: int | None = None  # seconds; None: the task never expires
    callback_url: str | None = None
    dialect: str = "unified"
    # Native Ark only: settings the task document echoes, and what the content list held besides images.
    draft: bool = False
    priority: int | None = None
    safety_identifier: str | None = None
    draft_task_id: str | None = None
    omni_reference_task_type: str | None = None
    reference_media: tuple[str, ...] = ()  # reference video and audio URLs, which change the render

    @property
    def with_audio(self) -> bool:
        """An audio track is added only when asked for and the model makes sound."""
        info = MODELS.get(self.model)
        return self.generate_audio and info is not None and info.audio


def parse_json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "InvalidParameter", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "The request body must be a JSON object.")
    return body


def is_int(value: object) -> bool:
    # bool is a subclass of int in Python, but `true` is not a valid duration or seed.
    return isinstance(value, int) and not isinstance(value, bool)


def check_callback_url(field: str, value: object) -> str | None:
    """A callback URL both dialects accept: an absolute http(s) URL with a host, no spaces, of reasonable length."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > CALLBACK_URL_MAX_CHARS or any(c.isspace() for c in value):
        raise invalid_parameter(field, f"must be an http(s) URL of at most {CALLBACK_URL_MAX_CHARS} characters.")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        valid = False
    if not valid:
        raise invalid_parameter(field, "must be an http(s) URL.")
    return value


def model_field(body: dict[str, Any]) -> str:
    """The body's `model`: both dialects refuse a missing or non-text one alike."""
    model = body.get("model")
    if model is None:
        raise invalid_parameter("model", "the field is required.")
    if not isinstance(model, str):
        raise invalid_parameter("model", "must be a string.")
    return model


def check_model(body: dict[str, Any]) -> tuple[str, ModelInfo]:
    """The body's model and what it can do; an unknown one is refused as the gateway refuses it."""
    model = model_field(body)
    info = MODELS.get(model)
    if info is None:
        raise ApiError(
            404,
            "ModelNotOpen",
            f"Your account has not activated the model {model}. Please activate the model service in the console.",
            param="model",  # only the Ark dialect's error body shows it
        )
    return model, info


def check_booleans(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, bool]:
    """Each of `names` in `fields` (False when absent), refusing the first one that is not a JSON boolean."""
    flags: dict[str, bool] = {}
    for name in names:
        value = fields.get(name, False)
        if not isinstance(value, bool):
            raise invalid_parameter(name, f"must be a boolean (got {value!r}).")
        flags[name] = value
    return flags


def validate_request(body: dict[str, Any], callback_field: str = "") -> GenerationRequest:
    """Check every field the way the provider does. Raises ApiError naming the first bad field.

    `callback_field` names the body field a gateway takes the callback URL from ("": it takes none).
    """
    model, info = check_model(body)

    prompt = body.get("prompt")
    if prompt is None:
        raise invalid_parameter("prompt", "the field is required.")
    if not isinstance(prompt, str):
        raise invalid_parameter("prompt", "must be a string.")
    if not prompt.strip():
        raise invalid_parameter("prompt", "must not be empty.")
    # The provider silently cuts long prompts rather than rejecting them.
    truncated = len(prompt) > PROMPT_MAX_CHARS
    prompt = prompt[:PROMPT_MAX_CHARS]

    images = body.get("images")
    if not info.accepts_images:
        if images:
            raise invalid_parameter("images", f"the model {model} does not support image input (text-to-video only).")
        raise invalid_parameter(
            "images", f"the model {model} is text-to-video only; this service needs an input image."
        )
    if images is None:
        raise invalid_parameter("images", "the field is required for image-to-video.")
    if not isinstance(images, list) or not images:
        raise invalid_parameter("images", "must be a non-empty array of image URLs.")
    if len(images) > info.max_images:
        raise invalid_parameter("images", f"the model {model} accepts at most {info.max_images} image(s).")
    for i, ref in enumerate(images):
        if not isinstance(ref, str) or not ref:
            raise invalid_parameter(f"images[{i}]", "must be a non-empty string (URL or data URL).")

    duration = body.get("duration", 5)
    if not is_int(duration) or duration not in DURATIONS:
        raise invalid_parameter("duration", f"must be one of {', '.join(map(str, DURATIONS))} (got {duration!r}).")

    resolution = body.get("resolution", info.default_resolution)
    if not isinstance(resolution, str) or resolution not in RESOLUTIONS:
        raise invalid_parameter("resolution", f"must be one of {', '.join(RESOLUTIONS)} (got {resolution!r}).")

    ratio = body.get("ratio", "adaptive")
    if not isinstance(ratio, str) or ratio not in RATIOS:
        raise invalid_parameter("ratio", f"must be one of {', '.join(RATIOS)} (got {ratio!r}).")

    seed = body.get("seed")
    if seed is not None and (not is_int(seed) or not 0 <= seed <= SEED_MAX):
        raise invalid_parameter("seed", f"must be an integer between 0 and {SEED_MAX} (got {seed!r}).")

    flags = check_booleans(body, BOOL_FIELDS)
    callback_url = check_callback_url(callback_field, body.get(callback_field)) if callback_field else None

    return GenerationRequest(
        model=model,
        prompt=prompt,
        prompt_truncated=truncated,
        images=tuple(images),
        duration=duration,
        resolution=resolution,
        ratio=ratio,
        seed=seed,
        watermark=flags["watermark"],
        camerafixed=flags["camerafixed"],
        return_last_frame=flags["return_last_frame"],
        generate_audio=flags["generate_audio"],
        callback_url=callback_url,
    )


def redact_body(body: object) -> object:
    """A copy of a request body with data URLs shortened, so counters do not hold megabytes of base64."""
    if isinstance(body, dict):
        return {k: redact_body(v) for k, v in body.items()}
    if isinstance(body, list):
        return [redact_body(v) for v in body]
    if isinstance(body, str) and body.startswith("data:") and len(body) > 96:
        head = body.split(",", 1)[0]
        return f"{head},<{len(body)} chars>"
    return body
