"""Resolve a provider request: template defaults, overridden by the upload's S3 user metadata."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from email.errors import MessageError
from email.header import decode_header, make_header
from typing import Any, get_args
from urllib.parse import unquote

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Ratio, Resolution, VideoRequest
from seedance_pipeline.rules.draft_request import ark_final_body
from seedance_pipeline.rules.model_catalogue import (
    ImageMode,
    ProviderApi,
    check_request,
    describe_durations,
    refuse_unknown_or_text_only,
)
from seedance_pipeline.rules.reference_media import check_references
from seedance_pipeline.settings import Settings

MAX_PROMPT_CHARS = 800
MAX_SEED = 2_147_483_647
# The native Ark API takes a wider range, with -1 meaning "random" (docs/provider-api.md, "The native Ark v3 API").
ARK_SEEDS = (-1, 2**32 - 1)
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
RATIOS: tuple[str, ...] = get_args(Ratio)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_BOOL_FIELDS = {
    "watermark": "watermark",
    "camerafixed": "camerafixed",
    "return-last-frame": "return_last_frame",
    "generate-audio": "generate_audio",
    "draft": "draft",
}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
METADATA_FIELDS = (
    "prompt",
    "model",
    "resolution",
    "ratio",
    "duration",
    "seed",
    "task-type",
    "output-format",
    *_BOOL_FIELDS,
)
DRAFT_RESOLUTION = "480p"


def decode_metadata_text(value: str, *, field: str = "prompt") -> str:
    """S3 metadata is ASCII on the wire: undo RFC 2047 (=?UTF-8?B?...?=) or percent-encoding."""
    if "=?" in value and "?=" in value:
        try:
            decoded = str(make_header(decode_header(value)))
        # The email package's decoder on uploader-chosen text: a bad base64 payload is a HeaderParseError and a
        # non-ASCII charset name a CharsetError (both MessageError), an unknown charset a LookupError, undecodable
        # bytes a UnicodeDecodeError (a ValueError).
        except (MessageError, ValueError, LookupError) as exc:
            raise InvalidInput(
                f"metadata '{field}' has a malformed RFC 2047 encoded word ({type(exc).__name__}: {exc})",
                code=ErrorCode.INVALID_METADATA,
            ) from exc
        return _encodable(decoded, field)
    if _PERCENT_ESCAPE.search(value):
        return unquote(value, errors="strict") if _decodes(value) else value
    return value


def _encodable(text: str, field: str) -> str:
    """A charset such as unicode_escape can decode to lone surrogates, which no JSON body or job record can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"metadata '{field}' decodes to text that is not valid Unicode ({exc.reason} at {exc.start})",
            code=ErrorCode.INVALID_METADATA,
        ) from exc
    return text


def _decodes(value: str) -> bool:
    try:
        unquote(value, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def parse_bool(name: str, raw: str, *, source: str = "metadata", code: ErrorCode = ErrorCode.INVALID_METADATA) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"{source} '{name}' is {raw!r}; allowed: true or false", code=code)


def metadata_fields(metadata: Mapping[str, str]) -> dict[str, str]:
    """S3 metadata (or a manifest's overrides) under the names resolve_request reads: lower case, no prefix."""
    return {key.lower().removeprefix("x-amz-meta-"): value for key, value in metadata.items()}


def resolve_prompt(settings: Settings, meta: Mapping[str, str]) -> tuple[str, bool]:
    """The prompt `meta` (metadata_fields) asks for, or the default; cut to MAX_PROMPT_CHARS (True when it was)."""
    prompt = decode_metadata_text(meta["prompt"]).strip() if meta.get("prompt", "").strip() else ""
    prompt = prompt or settings.default_prompt
    if len(prompt) > MAX_PROMPT_CHARS:
        return prompt[:MAX_PROMPT_CHARS], True
    return prompt, False


def resolve_request(
    settings: Settings,
    metadata: Mapping[str, str],
    *,
    mode: ImageMode = ImageMode.FIRST_FRAME,
    image_count: int = 1,
    source: str = "metadata",
    code: ErrorCode = ErrorCode.INVALID_METADATA,
    video_count: int = 0,
    audio_count: int = 0,
) -> VideoRequest:
    """Defaults overridden by `metadata`, checked against the model catalogue for this image mode and these
    reference videos and audio clips.

    `source` and `code` name where the overrides came from (S3 metadata, or a manifest) in any refusal.
    """
    meta = metadata_fields(metadata)
    prompt, notes_truncated = resolve_prompt(settings, meta)

    catalogue = settings.model_catalogue
    model = meta.get("model", settings.model).strip()
    field_name = f"{source} 'model'" if "model" in meta else "the Model parameter"
    spec = refuse_unknown_or_text_only(model, catalogue, field=field_name, code=code)
    resolution = _choice("resolution", meta.get("resolution", settings.resolution), RESOLUTIONS, source, code)
    ratio = _choice("ratio", meta.get("ratio", settings.ratio), RATIOS, source, code)
    durations = spec.durations_for(settings.provider_api)
    duration = _duration(meta.get("duration"), settings.duration, durations, source, code, model)
    seed = _seed(meta.get("seed"), source, code, settings.provider_api)
    flags: dict[str, Any] = {
        "watermark": settings.watermark,
        # The template's CameraFixed and GenerateAudio mean "where the model takes it"; only an upload's own ask
        # for what the model lacks is refused.
        "camerafixed": settings.camera_fixed and mode in spec.camera_fixed_modes,
        "return_last_frame": settings.return_last_frame,
        "generate_audio": settings.generate_audio and spec.audio,
        "draft": False,
    }
    for meta_name, field in _BOOL_FIELDS.items():
        if meta_name in meta:
            flags[field] = parse_bool(meta_name, meta[meta_name], source=source, code=code)
    task_type = meta.get("task-type", "").strip() or None
    output_format = meta.get("output-format", "mp4").strip().lower()
    _check_options(settings, spec.id, spec.output_formats, spec.draft, output_format, flags["draft"], code)
    if flags["draft"]:
        resolution = DRAFT_RESOLUTION  # a draft is made at 480p whatever was asked; its final takes the resolution
    if mode is not ImageMode.REFERENCE_IMAGES and task_type is not None:
        raise InvalidInput(f"{source} 'task-type' is for reference manifests only, not {mode.value}", code=code)
    check_request(
        model,
        mode=mode,
        image_count=image_count,
        duration=duration,
        resolution=resolution,
        ratio=ratio,
        generate_audio=flags["generate_audio"],
        camera_fixed=flags["camerafixed"],
        service_tier=settings.service_tier,
        platform=settings.platform,
        catalogue=catalogue,
        provider_api=settings.provider_api,
        code=code,
        other_references=video_count,
    )
    check_references(
        spec,
        images=image_count if mode is ImageMode.REFERENCE_IMAGES else 0,
        videos=video_count,
        audio=audio_count,
        task_type=task_type,
        provider_api=settings.provider_api,
        code=code,
    )
    return VideoRequest(
        prompt=prompt,
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        seed=seed,
        prompt_truncated=notes_truncated,
        task_type=task_type,
        output_format=output_format,
        **flags,
    )


def _check_options(
    settings: Settings,
    model: str,
    formats: tuple[str, ...],
    has_draft: bool,
    output_format: str,
    draft: bool,
    code: ErrorCode,
) -> None:
    """The output container and the draft: only natively, and only on the models whose row offers them."""
    if settings.provider_api == "unified" and (output_format != "mp4" or draft):
        asked = "a draft" if draft else f"output format {output_format}"
        raise InvalidInput(
            f"the unified gateway format cannot carry {asked}: it makes MP4 finals only (ProviderApi=ark can)",
            code=code,
        )
    if output_format not in formats:
        raise InvalidInput(f"model {model} offers output formats {', '.join(formats)}, not {output_format}", code=code)
    if draft and not has_draft:
        raise InvalidInput(f"model {model} has no draft mode: leave draft off", code=code)


def _choice(name: str, raw: str, allowed: tuple[str, ...], source: str, code: ErrorCode) -> str:
    value = raw.strip()
    if value not in allowed:
        raise InvalidInput(f"{source} '{name}' is {raw!r}; allowed: {', '.join(allowed)}", code=code)
    return value


def _duration(raw: str | None, default: int, allowed: frozenset[int], source: str, code: ErrorCode, model: str) -> int:
    """The model's durations, as the provider dialect narrows them (the unified gateway offers only 5 and 10; -1,
    "the model picks", only natively and where the model offers it). The default is checked with the request."""
    if raw is None:
        return default
    try:
        value: int | None = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value not in allowed:
        raise InvalidInput(
            f"{source} 'duration' is {raw!r}; allowed: {describe_durations(allowed)} (seconds) with model {model}",
            code=code,
        )
    return value


def _seed(raw: str | None, source: str, code: ErrorCode, provider_api: ProviderApi = "unified") -> int | None:
    if raw is None or not raw.strip():
        return None
    low, high = ARK_SEEDS if provider_api == "ark" else (0, MAX_SEED)
    try:
        value: int | None = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InvalidInput(f"{source} 'seed' is {raw!r}; allowed: a whole number from {low} to {high}", code=code)
    return value


def provider_body(request: VideoRequest, image_urls: list[str], *, takes_camera_fixed: bool = True) -> dict[str, Any]:
    """The unified gateway body: the request's fields and the image list (camerafixed only where the model takes
    it: docs/provider-api.md, "Models")."""
    # The 2.x fields are refused for this dialect when resolved (it cannot carry them), so never sent here.
    native_only = {"prompt_truncated", "task_type", "output_format", "draft", "draft_of"}
    exclude = native_only | (set() if takes_camera_fixed else {"camerafixed"})
    body: dict[str, Any] = request.model_dump(exclude=exclude, exclude_none=True)
    body["images"] = image_urls
    return body


_ARK_ROLES = {
    ImageMode.FIRST_FRAME: ("first_frame",),
    ImageMode.FIRST_AND_LAST: ("first_frame", "last_frame"),
}


def ark_roles(mode: ImageMode, image_count: int) -> list[str]:
    """Each image's role, in the images' order: the three modes cannot be mixed in one request."""
    if mode is ImageMode.REFERENCE_IMAGES:
        return ["reference_image"] * image_count
    roles = _ARK_ROLES[mode]
    if image_count != len(roles):
        raise ValueError(f"{mode.value} takes {len(roles)} image(s), got {image_count}")
    return list(roles)


def ark_body(
    request: VideoRequest,
    image_urls: list[str],
    mode: ImageMode,
    *,
    service_tier: str = "default",
    expires_after: int | None = None,
    takes_camera_fixed: bool = True,
    media_urls: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The native Ark body: a content list (the prompt, then each image with its role, then each reference video
    and audio clip) and top-level settings, never the older text flags after the prompt; `camera_fixed` only where
    the model takes it in this mode; the 2.x fields only when asked for, so older models never see them."""
    content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
    for url, role in zip(image_urls, ark_roles(mode, len(image_urls)), strict=True):
        content.append({"type": "image_url", "image_url": {"url": url}, "role": role})
    for kind, url in media_urls or []:
        item_type = f"{kind}_url"  # video_url / audio_url (docs/provider-api.md, "Reference videos and audio")
        content.append({"type": item_type, item_type: {"url": url}, "role": f"reference_{kind}"})
    body: dict[str, Any] = {
        "model": request.model,
        "content": content,
        "resolution": request.resolution,
        "ratio": request.ratio,
        "duration": request.duration,
        "watermark": request.watermark,
        "generate_audio": request.generate_audio,
        "return_last_frame": request.return_last_frame,
        "service_tier": service_tier,
    }
    if takes_camera_fixed:
        body["camera_fixed"] = request.camerafixed
    if request.seed is not None:
        body["seed"] = request.seed
    if expires_after is not None:
        body["execution_expires_after"] = expires_after
    if request.task_type is not None:
        body["omni_reference_task_type"] = request.task_type
    if request.output_format != "mp4":
        body["output_format"] = request.output_format
    if request.draft:
        body["draft"] = True
    return body


def provider_body_for(
    settings: Settings,
    request: VideoRequest,
    image_urls: list[str],
    mode: ImageMode,
    *,
    callback_url: str | None = None,
    media_urls: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The body in the dialect the stack speaks (PROVIDER_API), with the job's callback URL when the stack sends
    callbacks: Ark reads `callback_url`; a unified gateway the field CALLBACK_FIELD names."""
    spec = settings.model_catalogue.get(request.model)
    # A model outside the catalogue never gets this far (resolve_request refuses it); an unknown row sends all.
    takes_camera_fixed = spec is None or mode in spec.camera_fixed_modes
    if settings.provider_api == "ark" and request.draft_of is not None:
        body = ark_final_body(
            request, service_tier=settings.service_tier, expires_after=settings.ark_expires_after_seconds
        )
        field = "callback_url"
    elif settings.provider_api == "ark":
        body = ark_body(
            request,
            image_urls,
            mode,
            service_tier=settings.service_tier,
            expires_after=settings.ark_expires_after_seconds,
            takes_camera_fixed=takes_camera_fixed,
            media_urls=media_urls,
        )
        field = "callback_url"
    else:
        body = provider_body(request, image_urls, takes_camera_fixed=takes_camera_fixed)
        field = settings.callback_field
    if callback_url and settings.sends_callbacks and field:
        body[field] = callback_url
    return body


def data_url(image_bytes: bytes, image_format: str) -> str:
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(image_bytes).decode('ascii')}"


def media_data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
