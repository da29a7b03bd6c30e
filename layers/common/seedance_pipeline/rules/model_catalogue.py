"""The models the pipeline knows, and what each can do, as data (docs/provider-api.md "Models" points here).

Every model check in the pipeline asks this catalogue: which ids are allowed, which image modes, durations,
resolutions and audio each offers. A new model is a new row, not a new branch; an operator can add rows at deploy
time (the `ExtraModels` parameter, `Settings.extra_models`) without a code change, and the provider's own 400/404
is then the judge of what the operator declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Resolution

ProviderApi = Literal["unified", "ark"]
ALL_RESOLUTIONS: tuple[Resolution, ...] = get_args(Resolution)
# The unified gateway format offers these clip lengths whatever the model's native range (docs/provider-api.md).
UNIFIED_GATEWAY_DURATIONS = frozenset({5, 10})
# BytePlus ModelArk spells every id without the Volcengine prefix.
BYTEPLUS_DROPPED_PREFIX = "doubao-"
EXTRA_MODELS_HINT = "to allow another model id, declare it in the ExtraModels parameter (EXTRA_MODELS)"


class ImageMode(StrEnum):
    """How a request uses its images; the provider does not let a request mix them."""

    FIRST_FRAME = "first_frame"
    FIRST_AND_LAST = "first_and_last_frame"
    REFERENCE_IMAGES = "reference_images"


_MODE_PHRASES = {
    ImageMode.FIRST_FRAME: "a first frame",
    ImageMode.FIRST_AND_LAST: "a first and a last frame",
    ImageMode.REFERENCE_IMAGES: "reference images",
}


class ModelSpec(BaseModel):
    """One model's capabilities. Durations are the model's native range; a dialect may narrow them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    aliases: tuple[str, ...] = ()
    modes: frozenset[ImageMode] = frozenset({ImageMode.FIRST_FRAME})
    max_reference_images: int = Field(default=0, ge=0, le=64)
    durations: frozenset[int] = frozenset(UNIFIED_GATEWAY_DURATIONS)
    resolutions: tuple[Resolution, ...] = ALL_RESOLUTIONS
    # Where one mode offers fewer resolutions than the model does (lite i2v: no 1080p with reference images).
    mode_resolutions: Mapping[ImageMode, tuple[Resolution, ...]] = Field(default_factory=dict)
    audio: bool = False
    text_only: bool = False
    note: str = ""

    @field_validator("durations", mode="before")
    @classmethod
    def _durations_from_range_text(cls, value: Any) -> Any:
        """Operators may write a range as "2-12" instead of listing every second."""
        if isinstance(value, str):
            low, sep, high = value.partition("-")
            if not sep or not low.strip().isdigit() or not high.strip().isdigit():
                raise ValueError(f'{value!r} is not a range such as "2-12" or a list such as [5, 10]')
            return frozenset(range(int(low), int(high) + 1))
        return value

    @field_validator("durations")
    @classmethod
    def _durations_are_positive(cls, value: frozenset[int]) -> frozenset[int]:
        if any(seconds < 1 or seconds > 600 for seconds in value):
            raise ValueError("every duration must be a whole number of seconds from 1 to 600")
        return value

    @model_validator(mode="after")
    def _capabilities_are_coherent(self) -> ModelSpec:
        if self.text_only:
            return self
        if not self.modes:
            raise ValueError(f"model {self.id}: 'modes' must name at least one of {_mode_names()}")
        if not self.durations:
            raise ValueError(f"model {self.id}: 'durations' must not be empty")
        if not self.resolutions:
            raise ValueError(f"model {self.id}: 'resolutions' must not be empty")
        if ImageMode.REFERENCE_IMAGES in self.modes and self.max_reference_images < 1:
            raise ValueError(f"model {self.id}: mode reference_images needs 'max_reference_images' of 1 or more")
        return self

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def resolutions_for(self, mode: ImageMode) -> tuple[Resolution, ...]:
        return self.mode_resolutions.get(mode, self.resolutions)

    def durations_for(self, provider_api: ProviderApi) -> frozenset[int]:
        return self.durations & UNIFIED_GATEWAY_DURATIONS if provider_api == "unified" else self.durations


def _spec(model_id: str, **capabilities: Any) -> ModelSpec:
    alias = model_id.removeprefix(BYTEPLUS_DROPPED_PREFIX)
    return ModelSpec(id=model_id, aliases=(alias,) if alias != model_id else (), **capabilities)


_FIRST_FRAMES = frozenset({ImageMode.FIRST_FRAME, ImageMode.FIRST_AND_LAST})
_EVERY_MODE = frozenset(ImageMode)

# Order matters only for messages: the pipeline's default first, then the model manifests have always named.
BUILT_IN_MODELS: tuple[ModelSpec, ...] = (
    _spec(
        "doubao-seedance-1-0-pro-250528",
        modes=_FIRST_FRAMES,
        durations=frozenset(range(2, 13)),
        note="the pipeline's default",
    ),
    _spec(
        "doubao-seedance-1-0-lite-i2v-250428",
        modes=_EVERY_MODE,
        max_reference_images=4,
        durations=frozenset(range(2, 13)),
        mode_resolutions={ImageMode.REFERENCE_IMAGES: ("480p", "720p")},
    ),
    _spec(
        "doubao-seedance-1-0-pro-fast-251015",
        modes=frozenset({ImageMode.FIRST_FRAME}),
        durations=frozenset(range(2, 13)),
        note="about 3x faster and 70% cheaper than pro",
    ),
    _spec(
        "doubao-seedance-1-5-pro-251215",
        modes=_FIRST_FRAMES,
        durations=frozenset(range(4, 13)),
        audio=True,
        note="a 480p draft mode",
    ),
    _spec(
        "doubao-seedance-2-0-260128",
        modes=_EVERY_MODE,
        max_reference_images=9,
        durations=frozenset(range(4, 16)),
        audio=True,
    ),
    _spec(
        "doubao-seedance-2-0-fast-260128",
        modes=_EVERY_MODE,
        max_reference_images=9,
        durations=frozenset(range(4, 16)),
        audio=True,
    ),
    _spec(
        "doubao-seedance-1-0-lite-t2v-250428",
        modes=frozenset(),
        durations=frozenset(),
        text_only=True,
        note="text-to-video only: wrong for an image-to-video pipeline",
    ),
)


class ModelCatalogue:
    """Models by id and alias. Later rows (an operator's) replace earlier ones with the same id."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        by_id: dict[str, ModelSpec] = {}
        for spec in specs:
            by_id[spec.id] = spec
        self._specs = tuple(by_id.values())
        self._lookup = {name: spec for spec in self._specs for name in spec.ids}

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs)

    def get(self, model_id: str) -> ModelSpec | None:
        return self._lookup.get(model_id)

    def merged(self, extra: Iterable[ModelSpec]) -> ModelCatalogue:
        return ModelCatalogue((*self._specs, *extra))

    def image_to_video_ids(self) -> list[str]:
        return [spec.id for spec in self._specs if not spec.text_only]

    def ids_with_mode(self, mode: ImageMode) -> list[str]:
        return [spec.id for spec in self._specs if not spec.text_only and mode in spec.modes]


BUILT_IN_CATALOGUE = ModelCatalogue(BUILT_IN_MODELS)
TEXT_ONLY_IDS = frozenset(name for spec in BUILT_IN_MODELS if spec.text_only for name in spec.ids)


def parse_extra_models(raw: Any) -> tuple[ModelSpec, ...]:
    """EXTRA_MODELS as JSON: a list of {id, modes, durations, ...}, or an object of id -> {modes, durations, ...}.

    Raises ValueError naming the entry and field at fault (pydantic turns it into a Settings error at cold start).
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ()
    document = raw
    if isinstance(raw, str):
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"EXTRA_MODELS is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        entries = [
            {"id": model_id, **fields} if isinstance(fields, dict) else fields for model_id, fields in document.items()
        ]
    elif isinstance(document, (list, tuple)):
        entries = list(document)
    else:
        raise ValueError("EXTRA_MODELS must be a JSON list of models or an object of model id -> capabilities")
    specs = []
    for index, entry in enumerate(entries):
        if isinstance(entry, ModelSpec):
            specs.append(entry)
            continue
        where = f"EXTRA_MODELS[{index}]" + (f" ({entry.get('id')!r})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            raise ValueError(f'{where} must be a JSON object such as {{"id": ..., "modes": ["first_frame"]}}')
        if entry.get("id") in TEXT_ONLY_IDS:
            raise ValueError(f"{where}: {entry['id']} is text-to-video only and cannot be allowed in this pipeline")
        try:
            specs.append(ModelSpec.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(_describe(error) for error in exc.errors())
            raise ValueError(f"{where}: {problems}") from None
    return tuple(specs)


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"'{field}' is not a known field (known: {', '.join(ModelSpec.model_fields)})"
    return f"'{field}': {error.get('msg')}" if field else str(error.get("msg"))


def _mode_names() -> str:
    return ", ".join(mode.value for mode in ImageMode)


def describe_durations(seconds: Iterable[int]) -> str:
    """5 or 10; 2-12; 4, 6 or 8: the shortest honest phrase for a set of whole seconds."""
    values = sorted(set(seconds))
    if not values:
        return "none"
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    if len(values) == 1:
        return str(values[0])
    return f"{', '.join(map(str, values[:-1]))} or {values[-1]}"


def refuse_unknown_or_text_only(
    model_id: str, catalogue: ModelCatalogue, *, field: str, code: ErrorCode = ErrorCode.INVALID_METADATA
) -> ModelSpec:
    """The catalogue's row for a model id, or InvalidInput that says which ids are allowed and how to add one."""
    spec = catalogue.get(model_id)
    allowed = ", ".join(catalogue.image_to_video_ids())
    if spec is None:
        raise InvalidInput(
            f"{field} is {model_id!r}; allowed image-to-video models: {allowed}; {EXTRA_MODELS_HINT}", code=code
        )
    if spec.text_only:
        raise InvalidInput(f"{field} is {model_id!r}: {spec.note}; allowed image-to-video models: {allowed}", code=code)
    return spec


def check_request(
    model_id: str,
    *,
    mode: ImageMode,
    image_count: int,
    duration: int,
    resolution: str,
    generate_audio: bool,
    catalogue: ModelCatalogue,
    provider_api: ProviderApi = "unified",
    code: ErrorCode = ErrorCode.INVALID_METADATA,
) -> ModelSpec:
    """Refuse, before anything is paid for, a request the model cannot serve; the message says what it does allow."""
    spec = refuse_unknown_or_text_only(model_id, catalogue, field="model", code=code)

    def refuse(reason: str) -> InvalidInput:
        return InvalidInput(f"model {model_id} {reason}", code=code)

    if mode not in spec.modes:
        others = [m for m in ImageMode if m in spec.modes]
        takes = " or ".join(_takes(spec, m) for m in others)
        alternatives = ", ".join(catalogue.ids_with_mode(mode)) or "none"
        only = " only" if len(others) == 1 else ""
        raise refuse(f"takes {takes}{only}, not {_MODE_PHRASES[mode]} (models that do: {alternatives})")
    if mode is ImageMode.REFERENCE_IMAGES and not 1 <= image_count <= spec.max_reference_images:
        raise refuse(f"takes 1-{spec.max_reference_images} reference images, not {image_count}")
    expected = {ImageMode.FIRST_FRAME: 1, ImageMode.FIRST_AND_LAST: 2}.get(mode)
    if expected is not None and image_count != expected:
        raise refuse(f"needs {expected} image(s) for {_MODE_PHRASES[mode]}, not {image_count}")
    durations = spec.durations_for(provider_api)
    if duration not in durations:
        gateway = " with the unified gateway" if provider_api == "unified" else ""
        raise refuse(f"offers durations {describe_durations(durations)} s{gateway}, not {duration}")
    resolutions = spec.resolutions_for(mode)
    if resolution not in resolutions:
        with_mode = f" with {_MODE_PHRASES[mode]}" if mode in spec.mode_resolutions else ""
        raise refuse(f"offers {', '.join(resolutions)}{with_mode}, not {resolution}")
    if generate_audio and not spec.audio:
        with_audio = ", ".join(s.id for s in catalogue if s.audio and not s.text_only) or "none"
        raise refuse(f"has no audio: leave generate_audio off (models with audio: {with_audio})")
    return spec


def _takes(spec: ModelSpec, mode: ImageMode) -> str:
    if mode is ImageMode.REFERENCE_IMAGES:
        return f"1-{spec.max_reference_images} reference images"
    return _MODE_PHRASES[mode]
