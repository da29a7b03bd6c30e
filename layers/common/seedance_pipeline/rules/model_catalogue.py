"""The models the pipeline knows, and what each can do, as data (docs/provider-api.md "Models" points here).

Every model check in the pipeline asks this catalogue: which ids are allowed, which image modes, durations,
resolutions, ratios, tiers and audio each offers, and whether a platform has retired it. A new model is a new row
(rules/model_rows.py), not a new branch; an operator can add rows at deploy time (the `ExtraModels` parameter,
`Settings.extra_models`) without a code change, and the provider's own 400/404 is then the judge of what the
operator declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules.model_rows import BUILT_IN_MODELS
from seedance_pipeline.rules.model_spec import (
    ALL_RESOLUTIONS,
    MODEL_PICKS_DURATION,
    UNIFIED_GATEWAY_DURATIONS,
    ImageMode,
    ModelSpec,
    Platform,
    ProviderApi,
    Retirement,
)

__all__ = [
    "ALL_RESOLUTIONS",
    "BUILT_IN_CATALOGUE",
    "BUILT_IN_MODELS",
    "TEXT_ONLY_IDS",
    "UNIFIED_GATEWAY_DURATIONS",
    "ImageMode",
    "ModelCatalogue",
    "ModelSpec",
    "Platform",
    "ProviderApi",
    "Retirement",
    "check_request",
    "describe_durations",
    "parse_extra_models",
    "refuse_unknown_or_text_only",
]

EXTRA_MODELS_HINT = "to allow another model id, declare it in the ExtraModels parameter (EXTRA_MODELS)"

_MODE_PHRASES = {
    ImageMode.FIRST_FRAME: "a first frame",
    ImageMode.FIRST_AND_LAST: "a first and a last frame",
    ImageMode.REFERENCE_IMAGES: "reference images",
}


class ModelCatalogue:
    """Models by id and alias. Later rows (an operator's) replace earlier ones with the same id or spelling."""

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
        extra = tuple(extra)
        # Immutable: with nothing to add, this catalogue is the answer (a batch of 10,000 rows asks 20,000 times).
        return ModelCatalogue((*self._specs, *extra)) if extra else self

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
        where = f"EXTRA_MODELS[{index}]" + (f" ({entry.get('id')!r})" if isinstance(entry, dict) else "")
        if isinstance(entry, ModelSpec):
            spec = entry
        elif not isinstance(entry, dict):
            raise ValueError(f'{where} must be a JSON object such as {{"id": ..., "modes": ["first_frame"]}}')
        else:
            try:
                spec = ModelSpec.model_validate(entry)
            except ValidationError as exc:
                problems = "; ".join(_describe(error) for error in exc.errors())
                raise ValueError(f"{where}: {problems}") from None
        # Every name the entry answers to, not only its id: an alias is looked up like the id itself.
        text_only = [name for name in spec.ids if name in TEXT_ONLY_IDS]
        if text_only:
            raise ValueError(f"{where}: {text_only[0]} is text-to-video only and cannot be allowed in this pipeline")
        specs.append(spec)
    return tuple(specs)


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return f"'{field}' is not a known field (known: {', '.join(ModelSpec.model_fields)})"
    return f"'{field}': {error.get('msg')}" if field else str(error.get("msg"))


def describe_durations(seconds: Iterable[int]) -> str:
    """5 or 10; 2-12; 4, 6 or 8; 4-15 or -1 (the model picks): the shortest honest phrase for a set of seconds."""
    values = sorted(set(seconds))
    picks = MODEL_PICKS_DURATION in values
    values = [value for value in values if value != MODEL_PICKS_DURATION]
    if not values:
        text = "none"
    elif len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        text = f"{values[0]}-{values[-1]}"
    elif len(values) == 1:
        text = str(values[0])
    else:
        text = f"{', '.join(map(str, values[:-1]))} or {values[-1]}"
    return f"{text} or -1 (the model picks)" if picks else text


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
    if spec.text_only or model_id in TEXT_ONLY_IDS:
        note = spec.note if spec.text_only else "text-to-video only: wrong for an image-to-video pipeline"
        raise InvalidInput(f"{field} is {model_id!r}: {note}; allowed image-to-video models: {allowed}", code=code)
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
    ratio: str | None = None,
    service_tier: str = "default",
    camera_fixed: bool = False,
    platform: Platform | None = None,
    today: date | None = None,
    code: ErrorCode = ErrorCode.INVALID_METADATA,
    other_references: int = 0,
) -> ModelSpec:
    """Refuse, before anything is paid for, a request the model cannot serve; the message says what it does allow.

    `camera_fixed` is an explicit ask (an upload's own); `service_tier` counts only where it is sent (ark);
    `platform` is the stack's, where its base URL tells (else the platform the id's spelling belongs to).
    """
    spec = refuse_unknown_or_text_only(model_id, catalogue, field="model", code=code)

    def refuse(reason: str) -> InvalidInput:
        return InvalidInput(f"model {model_id} {reason}", code=code)

    retired = spec.retirement(model_id, platform, today or datetime.now(UTC).date())
    if retired is not None:
        raise refuse(
            f"was retired on {_PLATFORM_NAMES[retired.platform]} on {retired.on.isoformat()}: use "
            f"{retired.replacement} instead (or, to keep using it, declare it in ExtraModels)"
        )
    if mode not in spec.modes:
        others = [m for m in ImageMode if m in spec.modes]
        takes = " or ".join(_takes(spec, m) for m in others)
        alternatives = ", ".join(catalogue.ids_with_mode(mode)) or "none"
        only = " only" if len(others) == 1 else ""
        raise refuse(f"takes {takes}{only}, not {_MODE_PHRASES[mode]} (models that do: {alternatives})")
    # Reference videos (and audio with them) stand in for images: a references request may name no image at all.
    fewest = 0 if other_references else 1
    if mode is ImageMode.REFERENCE_IMAGES and not fewest <= image_count <= spec.max_reference_images:
        raise refuse(f"takes {fewest}-{spec.max_reference_images} reference images, not {image_count}")
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
    if ratio is not None and ratio not in spec.ratios:
        raise refuse(f"offers ratios {', '.join(spec.ratios)}, not {ratio}")
    if generate_audio and not spec.audio:
        with_audio = ", ".join(s.id for s in catalogue if s.audio and not s.text_only) or "none"
        raise refuse(f"has no audio: leave generate_audio off (models with audio: {with_audio})")
    if camera_fixed and mode not in spec.camera_fixed_modes:
        with_mode = f" with {_MODE_PHRASES[mode]}" if spec.camera_fixed_modes else ""
        raise refuse(f"does not take camera_fixed{with_mode}: leave camerafixed off")
    if provider_api == "ark" and service_tier == "flex" and not spec.flex:
        with_flex = ", ".join(s.id for s in catalogue if s.flex and not s.text_only) or "none"
        raise refuse(f"has no flex (offline) tier: use ServiceTier=default (models with flex: {with_flex})")
    return spec


_PLATFORM_NAMES = {"volcengine": "Volcengine", "byteplus": "BytePlus"}


def _takes(spec: ModelSpec, mode: ImageMode) -> str:
    if mode is ImageMode.REFERENCE_IMAGES:
        return f"1-{spec.max_reference_images} reference images"
    return _MODE_PHRASES[mode]
