"""Job manifests: a `.json` upload under the input prefix that describes one job in full.

    {"first_frame": "_frames/start.png", "last_frame": "_frames/end.png",
     "prompt": "镜头缓慢推进", "model": "doubao-seedance-1-0-lite-i2v-250428", "resolution": "720p"}

Instead of frames, a manifest may name reference images (`"reference_images": ["a.jpg", "b.jpg"]`) for models
that take them, and with them (or alone) reference videos and audio (`"reference_videos"`, `"reference_audio"`:
the 2.x family), a 2.5 `task_type` (reference, edit, extend), `"duration": -1` (the model picks), an
`output_format` (mp4, mov) and `"draft": true`.

All paths are relative to the manifest's folder (or absolute keys under the input prefix).
Images in a folder whose name starts with "_" are never processed on their own, so frames can live beside their
manifest. What a model allows (modes, counts, durations) is checked against the model catalogue when the request
is resolved, where the operator's extra models are known; this module checks only the manifest's shape.
"""

from __future__ import annotations

import json
import posixpath
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Ratio, Resolution
from seedance_pipeline.rules.model_catalogue import BUILT_IN_CATALOGUE, TEXT_ONLY_IDS, ImageMode
from seedance_pipeline.rules.video_request import MAX_SEED
from seedance_pipeline.settings import Settings

MAX_MANIFEST_BYTES = 64 * 1024
# A manifest is one flat object; a little room lets a wrong-typed field still get its field-level message.
MAX_MANIFEST_DEPTH = 16
MAX_KEY_BYTES = 1024  # S3's limit on an object key
# A bound on the manifest's size, not a model's limit: the catalogue says how many a model takes.
MAX_REFERENCE_IMAGES = 64
MAX_REFERENCE_MEDIA = 64
_MEDIA_LIST = Field(default=None, min_length=1, max_length=MAX_REFERENCE_MEDIA)


# What a final manifest may say besides the draft it names: the draft holds the prompt, the images and the model.
FINAL_FIELDS = frozenset({"draft_job", "draft_sidecar", "resolution", "watermark", "return_last_frame"})

# Takes of one request (a manifest's or a batch row's `takes`): each is a provider task, paid for.
MAX_TAKES = 8


def is_manifest(key: str) -> bool:
    return key.lower().endswith(".json")


class JobManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first_frame: str | None = Field(default=None, min_length=1)
    last_frame: str | None = Field(default=None, min_length=1)
    reference_images: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1, max_length=MAX_REFERENCE_IMAGES
    )
    reference_videos: list[Annotated[str, Field(min_length=1)]] | None = _MEDIA_LIST
    reference_audio: list[Annotated[str, Field(min_length=1)]] | None = _MEDIA_LIST
    task_type: Literal["reference", "edit", "extend"] | None = None
    output_format: Literal["mp4", "mov"] | None = None
    draft: StrictBool | None = None
    # A final: the approved draft's job id, or its sidecar's key in the output bucket (nothing else describes it).
    draft_job: str | None = Field(default=None, min_length=1, max_length=64)
    draft_sidecar: str | None = Field(default=None, min_length=1, max_length=MAX_KEY_BYTES)
    prompt: str | None = None
    model: str | None = Field(default=None, min_length=1)
    resolution: Resolution | None = None
    ratio: Ratio | None = None
    duration: StrictInt | None = Field(default=None, ge=-1, le=600)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, strict=True)
    watermark: StrictBool | None = None
    camerafixed: StrictBool | None = None
    return_last_frame: StrictBool | None = None
    generate_audio: StrictBool | None = None
    # Several videos of this one request with different seeds: handled as a one-row batch (rules/batch_files.py).
    takes: StrictInt | None = Field(default=None, ge=1, le=MAX_TAKES)

    @field_validator("model")
    @classmethod
    def _not_text_only(cls, value: str | None) -> str | None:
        # Text-only models are refused whatever the operator allows, so the manifest alone can tell.
        if value in TEXT_ONLY_IDS:
            spec = BUILT_IN_CATALOGUE.get(value)
            raise ValueError(f"{value} is {spec.note if spec else 'text-to-video only'}")
        return value

    @field_validator("duration")
    @classmethod
    def _seconds_or_model_picks(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must be whole seconds (1 or more), or -1 to let the model pick")
        return value

    @model_validator(mode="after")
    def _one_image_mode(self) -> JobManifest:
        if self.is_final:
            return self._a_final_names_only_its_draft()
        references = self.reference_images or self.reference_videos or self.reference_audio
        if references is not None and (self.first_frame or self.last_frame):
            raise ValueError(
                "name either 'first_frame' (and optionally 'last_frame') or references ('reference_images', "
                "'reference_videos', 'reference_audio'), not both"
            )
        if references is None and not self.first_frame:
            raise ValueError("'first_frame' (or 'reference_images' or 'reference_videos') is required")
        if self.reference_audio and not (self.reference_images or self.reference_videos):
            raise ValueError("'reference_audio' needs a reference image or video beside it: audio alone is never sent")
        return self

    @property
    def is_final(self) -> bool:
        return self.draft_job is not None or self.draft_sidecar is not None

    def _a_final_names_only_its_draft(self) -> JobManifest:
        if self.draft_job is not None and self.draft_sidecar is not None:
            raise ValueError("name the draft once: either 'draft_job' or 'draft_sidecar'")
        extra = sorted(self.model_fields_set - FINAL_FIELDS)
        if extra:
            raise ValueError(
                f"a final takes its inputs from its draft: {', '.join(repr(f) for f in extra)} cannot be set "
                f"(a final may set only {', '.join(sorted(FINAL_FIELDS))})"
            )
        return self

    @property
    def mode(self) -> ImageMode:
        if self.reference_images is not None or self.reference_videos is not None or self.reference_audio:
            return ImageMode.REFERENCE_IMAGES
        return ImageMode.FIRST_AND_LAST if self.last_frame else ImageMode.FIRST_FRAME

    @property
    def image_refs(self) -> list[tuple[str, str]]:
        """(field name, path) for every image, in the order the provider gets them."""
        if self.reference_images is not None:
            return [(f"reference_images[{i}]", ref) for i, ref in enumerate(self.reference_images)]
        frames = [("first_frame", self.first_frame), ("last_frame", self.last_frame)]
        return [(name, ref) for name, ref in frames if ref is not None]

    @property
    def media_refs(self) -> list[tuple[str, str, str]]:
        """(field name, path, kind) for every reference video, then every audio clip, in the provider's order."""
        videos = [(f"reference_videos[{i}]", ref, "video") for i, ref in enumerate(self.reference_videos or [])]
        audio = [(f"reference_audio[{i}]", ref, "audio") for i, ref in enumerate(self.reference_audio or [])]
        return videos + audio

    def overrides(self) -> dict[str, str]:
        """The manifest's settings in the shape of S3 metadata, so one resolver applies the same rules."""
        names = {
            "return_last_frame": "return-last-frame",
            "generate_audio": "generate-audio",
            "task_type": "task-type",
            "output_format": "output-format",
        }
        paths = {
            "first_frame",
            "last_frame",
            "reference_images",
            "reference_videos",
            "reference_audio",
            "draft_job",
            "draft_sidecar",
            "takes",
        }
        values = self.model_dump(exclude=paths, exclude_none=True)
        return {names.get(k, k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def check_manifest_size(size_bytes: int) -> None:
    """From the object's size, before reading it: a manifest too big to be one is refused as a manifest."""
    if size_bytes > MAX_MANIFEST_BYTES:
        raise InvalidInput(f"the manifest is over {MAX_MANIFEST_BYTES // 1024} KB", code=ErrorCode.INVALID_MANIFEST)


def parse_manifest(data: bytes) -> JobManifest:
    check_manifest_size(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the manifest is not valid UTF-8 JSON: {exc}", code=ErrorCode.INVALID_MANIFEST) from exc
    # json.loads recurses once per level: 64 KB of "[" is a RecursionError, not a JSONDecodeError, so the depth
    # is measured before the parser sees the text.
    depth = nesting_depth(text)
    if depth > MAX_MANIFEST_DEPTH:
        raise InvalidInput(
            f"the manifest nests {depth} levels deep; at most {MAX_MANIFEST_DEPTH} are allowed",
            code=ErrorCode.INVALID_MANIFEST,
        )
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    # JSONDecodeError is a ValueError; so is the int() limit on a number over 4300 digits, which json raises as is.
    except ValueError as exc:
        raise InvalidInput(f"the manifest is not valid UTF-8 JSON: {exc}", code=ErrorCode.INVALID_MANIFEST) from exc
    if not isinstance(document, dict):
        raise InvalidInput("the manifest must be a JSON object", code=ErrorCode.INVALID_MANIFEST)
    _require_encodable(document)
    return manifest_from_fields(document)


def manifest_from_fields(document: dict[str, object], *, what: str = "the manifest") -> JobManifest:
    """Validate a manifest's fields (a batch file's row is one too); the refusal names each field's problem."""
    try:
        return JobManifest.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise InvalidInput(f"{what} is invalid: {problems}", code=ErrorCode.INVALID_MANIFEST) from exc


def nesting_depth(text: str) -> int:
    """The deepest [ / { nesting in JSON text, brackets inside strings not counted; no recursion, one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _require_encodable(document: dict[str, object]) -> None:
    """JSON may escape lone surrogates ("\\ud800"); no S3 key, job record or provider body can carry them."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"the manifest holds text that is not valid Unicode ({exc.reason})", code=ErrorCode.INVALID_MANIFEST
        ) from exc


def _describe(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error.get("loc", ())) or "manifest"
    if error.get("type") == "extra_forbidden":
        return f"'{field}' is not a known field"
    return f"'{field}': {error.get('msg', 'invalid')}"


def frame_keys(manifest_key: str, manifest: JobManifest, settings: Settings) -> list[str]:
    return [_key_for(manifest_key, name, ref, settings) for name, ref in manifest.image_refs]


def media_keys(manifest_key: str, manifest: JobManifest, settings: Settings) -> list[tuple[str, str, str]]:
    """(field name, key, kind) for each reference video and audio clip, resolved as frames are."""
    return [(name, _key_for(manifest_key, name, ref, settings), kind) for name, ref, kind in manifest.media_refs]


def _key_for(manifest_key: str, name: str, ref: str, settings: Settings) -> str:
    folder = posixpath.dirname(manifest_key)
    key = ref.lstrip("/") if ref.startswith(settings.input_prefix) else posixpath.normpath(posixpath.join(folder, ref))
    if not key.startswith(settings.input_prefix) or ".." in key.split("/"):
        what = "a file" if name.startswith(("reference_videos", "reference_audio")) else "an image"
        raise InvalidInput(
            f"the manifest's '{name}' ({ref!r}) must name {what} under {settings.input_prefix!r}",
            code=ErrorCode.INVALID_MANIFEST,
        )
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidInput(
            f"the manifest's '{name}' makes a key over S3's {MAX_KEY_BYTES}-byte limit",
            code=ErrorCode.INVALID_MANIFEST,
        )
    if is_manifest(key):
        raise InvalidInput(f"the manifest's '{name}' names another manifest", code=ErrorCode.INVALID_MANIFEST)
    return key
