"""What one model can do, as a typed row (rules/model_rows.py holds the built-in rows, rules/model_catalogue.py the
checks). Operators write the same fields in `ExtraModels`; every field has a default that errs on the side of
sending less (no flex, no camera_fixed, no frames, the current docs' ratios)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProviderApi = Literal["unified", "ark"]
Platform = Literal["volcengine", "byteplus"]
PLATFORMS: tuple[Platform, ...] = ("volcengine", "byteplus")
# What a catalogue row may list; the pipeline requests only the first three today (models.Resolution: the output-size
# table that the budget estimate needs documents no 4K sizes).
CatalogueResolution = Literal["480p", "720p", "1080p", "4k"]
ALL_RESOLUTIONS: tuple[CatalogueResolution, ...] = ("480p", "720p", "1080p")
# The ratios the current Ark docs list (docs/provider-api.md, "Models"): 9:21 and keep_ratio are no longer among them.
DOCUMENTED_RATIOS: tuple[str, ...] = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "adaptive")
# The unified gateway format offers these clip lengths whatever the model's native range (docs/provider-api.md).
UNIFIED_GATEWAY_DURATIONS = frozenset({5, 10})
# `duration: -1`: the model picks the length (1.5 pro, the 2.0 family). The estimate then takes the longest.
MODEL_PICKS_DURATION = -1
SERVICE_TIERS = ("default", "flex")


class ImageMode(StrEnum):
    """How a request uses its images; the provider does not let a request mix them."""

    FIRST_FRAME = "first_frame"
    FIRST_AND_LAST = "first_and_last_frame"
    REFERENCE_IMAGES = "reference_images"


FIRST_FRAMES = frozenset({ImageMode.FIRST_FRAME, ImageMode.FIRST_AND_LAST})
EVERY_MODE = frozenset(ImageMode)


class Retirement(BaseModel):
    """A model withdrawn on one platform from a date, and the model its platform names in its place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    platform: Platform
    on: date
    replacement: str = Field(min_length=1)


class ModelSpec(BaseModel):
    """One model's capabilities. Durations are the model's native range; a dialect may narrow them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    aliases: tuple[str, ...] = ()
    # The id as each platform spells it (None: not offered there). Built-in rows set both where both exist.
    volcengine_id: str | None = None
    byteplus_id: str | None = None
    modes: frozenset[ImageMode] = frozenset({ImageMode.FIRST_FRAME})
    max_reference_images: int = Field(default=0, ge=0, le=64)
    # References besides images, sent with reference images in a manifest (rules/reference_media.py).
    max_reference_videos: int = Field(default=0, ge=0, le=64)
    max_reference_audio: int = Field(default=0, ge=0, le=64)
    # `omni_reference_task_type` values the model takes (reference, edit, extend: the 2.5 model); none: not sent.
    task_types: tuple[Literal["reference", "edit", "extend"], ...] = ()
    durations: frozenset[int] = frozenset(UNIFIED_GATEWAY_DURATIONS)
    # Whether `duration: -1` (the model picks) is offered natively.
    model_picks_duration: bool = False
    resolutions: tuple[CatalogueResolution, ...] = ALL_RESOLUTIONS
    # Where one mode offers fewer resolutions than the model does (lite i2v: no 1080p with reference images).
    mode_resolutions: Mapping[ImageMode, tuple[CatalogueResolution, ...]] = Field(default_factory=dict)
    ratios: tuple[str, ...] = DOCUMENTED_RATIOS
    audio: bool = False
    audio_default: bool = False
    draft: bool = False
    flex: bool = False
    # The modes in which the model takes `camera_fixed` (none of the 2.x family; never with reference images).
    camera_fixed_modes: frozenset[ImageMode] = frozenset()
    frames: bool = False
    output_formats: tuple[str, ...] = ("mp4",)
    retired: tuple[Retirement, ...] = ()
    text_only: bool = False
    note: str = ""
    # Keys of the sources in docs/provider-api.md ("Models") that each fact of the row comes from.
    sources: tuple[str, ...] = ()

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
            raise ValueError(
                "every duration must be a whole number of seconds from 1 to 600 (-1: model_picks_duration)"
            )
        return value

    @model_validator(mode="after")
    def _capabilities_are_coherent(self) -> ModelSpec:
        if self.text_only:
            return self
        if not self.modes:
            raise ValueError(f"model {self.id}: 'modes' must name at least one of {mode_names()}")
        if not self.durations:
            raise ValueError(f"model {self.id}: 'durations' must not be empty")
        if not self.resolutions:
            raise ValueError(f"model {self.id}: 'resolutions' must not be empty")
        if not self.ratios:
            raise ValueError(f"model {self.id}: 'ratios' must not be empty")
        if ImageMode.REFERENCE_IMAGES in self.modes and self.max_reference_images < 1:
            raise ValueError(f"model {self.id}: mode reference_images needs 'max_reference_images' of 1 or more")
        return self

    @property
    def ids(self) -> tuple[str, ...]:
        names = (self.id, *self.aliases, self.volcengine_id, self.byteplus_id)
        return tuple(dict.fromkeys(name for name in names if name))

    def resolutions_for(self, mode: ImageMode) -> tuple[CatalogueResolution, ...]:
        return self.mode_resolutions.get(mode, self.resolutions)

    def durations_for(self, provider_api: ProviderApi) -> frozenset[int]:
        """The clip lengths a request may ask for: the gateway offers 5 and 10 only, and no -1."""
        if provider_api == "unified":
            return self.durations & UNIFIED_GATEWAY_DURATIONS
        return self.durations | ({MODEL_PICKS_DURATION} if self.model_picks_duration else set())

    @property
    def longest_seconds(self) -> int:
        return max(self.durations, default=0)

    def platforms_of(self, name: str) -> tuple[Platform, ...]:
        """The platforms whose spelling `name` is (both when the row does not say)."""
        spellings: tuple[tuple[Platform, str | None], ...] = (
            ("volcengine", self.volcengine_id),
            ("byteplus", self.byteplus_id),
        )
        spelled = tuple(platform for platform, spelling in spellings if spelling == name)
        return spelled or PLATFORMS

    def retirement(self, name: str, platform: Platform | None, today: date) -> Retirement | None:
        """The retirement that applies to a request for `name` on `platform` (unknown: the platform its spelling
        belongs to; a spelling both share counts as retired where either retired it, the stricter reading)."""
        platforms = (platform,) if platform else self.platforms_of(name)
        return next((r for r in self.retired if r.platform in platforms and r.on <= today), None)


def mode_names() -> str:
    return ", ".join(mode.value for mode in ImageMode)
