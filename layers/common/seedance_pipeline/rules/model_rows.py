"""The built-in model rows: data only. Each row's `sources` are keys of the source list in docs/provider-api.md
("Models"), and the table there mirrors these rows (tests/unit/test_model_catalogue.py checks both ways).

Where sources disagree the row takes the stricter reading (the docs section says where): a capability no source
documents for a model is left off, so the pipeline refuses before paying instead of sending what may be refused.
"""

from __future__ import annotations

from datetime import date

from seedance_pipeline.rules.model_spec import EVERY_MODE, FIRST_FRAMES, ImageMode, ModelSpec, Retirement

_SECONDS_2_12 = frozenset(range(2, 13))
_SECONDS_4_12 = frozenset(range(4, 13))
_SECONDS_4_15 = frozenset(range(4, 16))
_SECONDS_4_30 = frozenset(range(4, 31))
_LOW_RESOLUTIONS = ("480p", "720p")
_MINI = "dreamina-seedance-2-0-mini-260615"

_SEEDANCE_2_FAMILY = {
    "modes": EVERY_MODE,
    "max_reference_images": 9,
    "max_reference_videos": 3,
    "max_reference_audio": 3,
    "durations": _SECONDS_4_15,
    "model_picks_duration": True,
    "audio": True,
    "audio_default": True,
}

# Order matters only for messages: the pipeline's default first.
BUILT_IN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="doubao-seedance-1-0-pro-250528",
        volcengine_id="doubao-seedance-1-0-pro-250528",
        byteplus_id="seedance-1-0-pro-250528",
        modes=FIRST_FRAMES,
        durations=_SECONDS_2_12,
        flex=True,
        camera_fixed_modes=FIRST_FRAMES,
        frames=True,
        note="the pipeline's default",
        sources=("ark-api", "byteplus-api"),
    ),
    ModelSpec(
        id="doubao-seedance-1-0-lite-i2v-250428",
        volcengine_id="doubao-seedance-1-0-lite-i2v-250428",
        byteplus_id="seedance-1-0-lite-i2v-250428",
        modes=EVERY_MODE,
        max_reference_images=4,
        durations=_SECONDS_2_12,
        mode_resolutions={ImageMode.REFERENCE_IMAGES: _LOW_RESOLUTIONS},
        flex=True,
        camera_fixed_modes=FIRST_FRAMES,
        frames=True,
        sources=("ark-api", "orcarouter"),
    ),
    ModelSpec(
        id="doubao-seedance-1-0-pro-fast-251015",
        volcengine_id="doubao-seedance-1-0-pro-fast-251015",
        byteplus_id="seedance-1-0-pro-fast-251015",
        modes=frozenset({ImageMode.FIRST_FRAME}),
        durations=_SECONDS_2_12,
        flex=True,
        camera_fixed_modes=frozenset({ImageMode.FIRST_FRAME}),
        frames=True,
        note="about 3x faster and 70% cheaper than pro",
        sources=("ark-api", "byteplus-api"),
    ),
    ModelSpec(
        id="doubao-seedance-1-5-pro-251215",
        volcengine_id="doubao-seedance-1-5-pro-251215",
        byteplus_id="seedance-1-5-pro-251215",
        modes=FIRST_FRAMES,
        durations=_SECONDS_4_12,
        model_picks_duration=True,
        audio=True,
        audio_default=True,
        draft=True,
        flex=True,
        camera_fixed_modes=FIRST_FRAMES,
        retired=(
            Retirement(platform="byteplus", on=date(2026, 11, 11), replacement="dreamina-seedance-2-0-mini-260615"),
        ),
        note="a 480p draft mode; accepts HEIC",
        sources=("ark-api", "byteplus-api", "retirements"),
    ),
    ModelSpec(
        id="doubao-seedance-2-0-260128",
        volcengine_id="doubao-seedance-2-0-260128",
        byteplus_id="dreamina-seedance-2-0-260128",
        **_SEEDANCE_2_FAMILY,
        sources=("byteplus-api", "byteplus-2-0", "apiyi-2-0", "replicate-2-0", "kie-2-0"),
    ),
    ModelSpec(
        id="doubao-seedance-2-0-fast-260128",
        volcengine_id="doubao-seedance-2-0-fast-260128",
        byteplus_id="dreamina-seedance-2-0-fast-260128",
        **_SEEDANCE_2_FAMILY,
        resolutions=_LOW_RESOLUTIONS,
        sources=("byteplus-api", "byteplus-2-0", "apiyi-2-0", "volcengine-2-0-fast", "kie-2-0"),
    ),
    ModelSpec(
        id=_MINI,
        byteplus_id=_MINI,
        **_SEEDANCE_2_FAMILY,
        resolutions=_LOW_RESOLUTIONS,
        note="BytePlus; the Volcengine spelling is not documented in the sources",
        sources=("uniall-2-0", "retirements"),
    ),
    ModelSpec(
        id="dreamina-seedance-2-5-260628",
        byteplus_id="dreamina-seedance-2-5-260628",
        modes=EVERY_MODE,
        max_reference_images=30,
        max_reference_videos=10,
        max_reference_audio=10,
        durations=_SECONDS_4_30,
        resolutions=("480p", "720p", "1080p", "4k"),
        audio=True,
        audio_default=True,
        draft=True,
        output_formats=("mp4", "mov"),
        task_types=("reference", "edit", "extend"),
        note="BytePlus only; 4K in the catalogue, not yet requested by the pipeline",
        sources=("byteplus-comfyui-2-5",),
    ),
    ModelSpec(
        id="dreamina-seedance-2-5-flash-261115",
        byteplus_id="dreamina-seedance-2-5-flash-261115",
        modes=EVERY_MODE,
        max_reference_images=30,
        max_reference_videos=10,
        max_reference_audio=10,
        durations=_SECONDS_4_30,
        resolutions=_LOW_RESOLUTIONS,
        audio=True,
        audio_default=True,
        note="BytePlus only",
        sources=("byteplus-comfyui-2-5",),
    ),
    ModelSpec(
        id="doubao-seedance-1-0-lite-t2v-250428",
        volcengine_id="doubao-seedance-1-0-lite-t2v-250428",
        byteplus_id="seedance-1-0-lite-t2v-250428",
        modes=frozenset(),
        durations=frozenset(),
        text_only=True,
        note="text-to-video only: wrong for an image-to-video pipeline",
        sources=("ark-api", "orcarouter"),
    ),
)
