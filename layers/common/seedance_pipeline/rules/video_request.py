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
from seedance_pipeline.settings import I2V_MODELS, Settings

MAX_PROMPT_CHARS = 800
MAX_SEED = 2_147_483_647
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
RATIOS: tuple[str, ...] = get_args(Ratio)
DURATIONS = (5, 10)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_BOOL_FIELDS = {
    "watermark": "watermark",
    "camerafixed": "camerafixed",
    "return-last-frame": "return_last_frame",
    "generate-audio": "generate_audio",
}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
METADATA_FIELDS = ("prompt", "model", "resolution", "ratio", "duration", "seed", *_BOOL_FIELDS)


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


def parse_bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"metadata '{name}' is {raw!r}; allowed: true or false", code=ErrorCode.INVALID_METADATA)


def resolve_request(settings: Settings, metadata: Mapping[str, str]) -> VideoRequest:
    meta = {key.lower().removeprefix("x-amz-meta-"): value for key, value in metadata.items()}
    notes_truncated = False

    prompt = decode_metadata_text(meta["prompt"]).strip() if meta.get("prompt", "").strip() else ""
    prompt = prompt or settings.default_prompt
    if len(prompt) > MAX_PROMPT_CHARS:
        prompt, notes_truncated = prompt[:MAX_PROMPT_CHARS], True

    model = meta.get("model", settings.model).strip()
    if model not in I2V_MODELS:
        raise InvalidInput(
            f"metadata 'model' is {model!r}; allowed image-to-video models: {', '.join(I2V_MODELS)}",
            code=ErrorCode.INVALID_METADATA,
        )
    resolution = _choice("resolution", meta.get("resolution", settings.resolution), RESOLUTIONS)
    ratio = _choice("ratio", meta.get("ratio", settings.ratio), RATIOS)
    duration = _duration(meta.get("duration"), settings.duration)
    seed = _seed(meta.get("seed"))
    flags: dict[str, Any] = {
        "watermark": settings.watermark,
        "camerafixed": settings.camera_fixed,
        "return_last_frame": settings.return_last_frame,
        "generate_audio": settings.generate_audio,
    }
    for meta_name, field in _BOOL_FIELDS.items():
        if meta_name in meta:
            flags[field] = parse_bool(meta_name, meta[meta_name])
    return VideoRequest(
        prompt=prompt,
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        seed=seed,
        prompt_truncated=notes_truncated,
        **flags,
    )


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip()
    if value not in allowed:
        raise InvalidInput(
            f"metadata '{name}' is {raw!r}; allowed: {', '.join(allowed)}", code=ErrorCode.INVALID_METADATA
        )
    return value


def _duration(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value not in DURATIONS:
        raise InvalidInput(
            f"metadata 'duration' is {raw!r}; allowed: 5 or 10 (seconds)", code=ErrorCode.INVALID_METADATA
        )
    return value


def _seed(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise InvalidInput(
            f"metadata 'seed' is {raw!r}; allowed: a whole number from 0 to {MAX_SEED}",
            code=ErrorCode.INVALID_METADATA,
        )
    return value


def provider_body(request: VideoRequest, image_urls: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = request.model_dump(exclude={"prompt_truncated"}, exclude_none=True)
    body["images"] = image_urls
    return body


def data_url(image_bytes: bytes, image_format: str) -> str:
    return f"data:image/{image_format.lower()};base64,{base64.b64encode(image_bytes).decode('ascii')}"
