"""What the provider docs say each model allows, stated outright (issues 18 and 20): a request a model cannot serve
is refused before it is paid for, with the reason; what is sent follows the model; retirements are data."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from seedance_local.cli_demo import DEMO_REQUESTS
from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload
from seedance_pipeline.rules.model_catalogue import BUILT_IN_CATALOGUE, BUILT_IN_MODELS, ImageMode, check_request
from seedance_pipeline.rules.token_estimate import estimate_tokens
from seedance_pipeline.rules.video_request import provider_body_for, resolve_request
from seedance_pipeline.settings import BYTEPLUS_ARK_BASE_URL, Settings
from tests.support.expect import present
from tests.support.fakes import GATEWAY_URL, make_runtime
from tests.support.images import image_bytes

PRO = "doubao-seedance-1-0-pro-250528"
LITE = "doubao-seedance-1-0-lite-i2v-250428"
LITE_T2V = "doubao-seedance-1-0-lite-t2v-250428"
PRO_1_5 = "doubao-seedance-1-5-pro-251215"
PRO_1_5_BYTEPLUS = "seedance-1-5-pro-251215"
SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_2_FAST = "doubao-seedance-2-0-fast-260128"
MINI = "dreamina-seedance-2-0-mini-260615"
SEEDANCE_2_5 = "dreamina-seedance-2-5-260628"
FLASH = "dreamina-seedance-2-5-flash-261115"
ARK = Settings(jobs_table_name="t", provider_api="ark", ratio="16:9")
FLEX = Settings(jobs_table_name="t", provider_api="ark", ratio="16:9", service_tier="flex")
UNIFIED = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, ratio="16:9")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "provider-api.md"


def submit(metadata: dict[str, str], **settings: Any):
    runtime, store, storage, provider = make_runtime(**settings)
    storage.add("in-bucket", "uploads/cat.jpg", image_bytes(), metadata)
    outcome = accept_upload(Upload(bucket="in-bucket", key="uploads/cat.jpg", sequencer="01"), runtime, owner="o")
    return outcome, provider


# --- issue 18 ------------------------------------------------------------------------------------------------------


def test_2_0_fast_at_1080p_is_rejected_before_paying_with_the_reason():
    outcome, provider = submit({"model": SEEDANCE_2_FAST, "resolution": "1080p"})
    assert outcome.outcome == "REJECTED"
    assert f"model {SEEDANCE_2_FAST} offers 480p, 720p, not 1080p" in present(outcome.reason)
    assert provider.submissions == []
    assert resolve_request(ARK, {"model": SEEDANCE_2_FAST, "resolution": "720p"}).resolution == "720p"


@pytest.mark.parametrize("model", [SEEDANCE_2, SEEDANCE_2_FAST, MINI])
def test_flex_on_the_2_0_family_is_rejected_before_paying_with_the_reason(model):
    outcome, provider = submit({"model": model}, provider_api="ark", service_tier="flex")
    assert outcome.outcome == "REJECTED"
    assert f"model {model} has no flex (offline) tier: use ServiceTier=default" in present(outcome.reason)
    assert provider.submissions == []


def test_flex_reaches_the_body_of_a_model_that_has_it():
    body = provider_body_for(FLEX, resolve_request(FLEX, {}), ["u"], ImageMode.FIRST_FRAME)
    assert body["service_tier"] == "flex" and body["model"] == PRO


def test_camera_fixed_is_sent_only_where_the_model_takes_it():
    settings = Settings(jobs_table_name="t", provider_api="ark", ratio="16:9", camera_fixed=True)
    pro = provider_body_for(settings, resolve_request(settings, {}), ["u"], ImageMode.FIRST_FRAME)
    assert pro["camera_fixed"] is True
    two = resolve_request(settings, {"model": SEEDANCE_2})
    assert two.camerafixed is False and "camera_fixed" not in provider_body_for(
        settings, two, ["u"], ImageMode.FIRST_FRAME
    )
    refs = resolve_request(settings, {"model": LITE}, mode=ImageMode.REFERENCE_IMAGES, image_count=2)
    assert "camera_fixed" not in provider_body_for(settings, refs, ["a", "b"], ImageMode.REFERENCE_IMAGES)
    unified = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, camera_fixed=True)
    gateway_two = resolve_request(unified, {"model": SEEDANCE_2})
    assert "camerafixed" not in provider_body_for(unified, gateway_two, ["u"], ImageMode.FIRST_FRAME)


def test_an_uploads_own_camera_fixed_on_a_model_without_it_is_refused():
    with pytest.raises(InvalidInput, match=f"model {SEEDANCE_2} does not take camera_fixed: leave camerafixed off"):
        resolve_request(ARK, {"model": SEEDANCE_2, "camerafixed": "true"})
    with pytest.raises(InvalidInput, match=f"model {LITE} does not take camera_fixed with reference images"):
        resolve_request(ARK, {"model": LITE, "camerafixed": "true"}, mode=ImageMode.REFERENCE_IMAGES, image_count=2)


def test_the_byteplus_2_0_ids_are_the_docs_spelling_and_the_invented_one_is_unknown():
    for model in ("dreamina-seedance-2-0-260128", "dreamina-seedance-2-0-fast-260128"):
        assert resolve_request(UNIFIED, {"model": model}).model == model  # sent as given
    with pytest.raises(InvalidInput, match="'seedance-2-0-260128'; allowed image-to-video models"):
        resolve_request(UNIFIED, {"model": "seedance-2-0-260128"})


@pytest.mark.parametrize("model", [PRO_1_5, SEEDANCE_2, SEEDANCE_2_FAST, MINI])
def test_duration_minus_1_lets_the_model_pick_natively_and_the_estimate_takes_the_longest(model):
    request = resolve_request(ARK, {"model": model, "duration": "-1"})
    assert request.duration == -1
    body = provider_body_for(ARK, request, ["u"], ImageMode.FIRST_FRAME)
    assert body["duration"] == -1
    longest = present(BUILT_IN_CATALOGUE.get(model)).longest_seconds
    assert estimate_tokens("720p", "16:9", -1, longest_seconds=longest) == estimate_tokens("720p", "16:9", longest)
    with pytest.raises(InvalidInput, match=r"allowed: 5 or 10 \(seconds\)"):
        resolve_request(UNIFIED, {"model": model, "duration": "-1"})


def test_duration_minus_1_is_refused_where_the_model_does_not_offer_it():
    with pytest.raises(InvalidInput, match=r"'duration' is '-1'; allowed: 2-12 \(seconds\)"):
        resolve_request(ARK, {"duration": "-1"})
    assert estimate_tokens("480p", "16:9", -1) == estimate_tokens("480p", "16:9", 30)  # no model: the longest of all


@pytest.mark.parametrize("ratio", ["9:21", "keep_ratio"])
def test_ratios_the_current_docs_do_not_list_are_refused_and_an_operator_may_declare_them(ratio):
    with pytest.raises(InvalidInput, match=f"model {PRO} offers ratios 21:9, 16:9, 4:3, 1:1, 3:4, 9:16, adaptive, not"):
        resolve_request(UNIFIED, {"ratio": ratio})
    declared = json.dumps([{"id": "acme-video-1", "ratios": ["16:9", ratio]}])
    settings = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, extra_models=declared)
    assert resolve_request(settings, {"model": "acme-video-1", "ratio": ratio}).ratio == ratio


def test_with_flex_the_task_expiry_is_arks_48_hours_unless_the_job_age_is_longer():
    assert ARK.ark_expires_after_seconds == 7200  # default tier: the job's own 120 min
    assert FLEX.ark_expires_after_seconds == 172_800
    assert FLEX.max_job_age_seconds == 172_800  # the job waits as long as its task may
    longer = Settings(jobs_table_name="t", provider_api="ark", service_tier="flex", max_job_age_minutes=3000)
    assert longer.ark_expires_after_seconds == 180_000
    # The tier is an Ark field: a gateway stack's age limit is its own.
    assert Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, service_tier="flex").max_job_age_seconds == 7200


# --- issue 20: retirement ------------------------------------------------------------------------------------------


def test_a_model_retired_on_byteplus_is_rejected_before_paying_naming_its_replacement():
    outcome, provider = submit({"model": PRO_1_5_BYTEPLUS})
    assert outcome.outcome == "REJECTED"
    assert f"model {PRO_1_5_BYTEPLUS} was retired on BytePlus on 2026-11-11: use {MINI} instead" in present(
        outcome.reason
    )
    assert provider.submissions == []
    # On a BytePlus Ark stack any spelling of it is BytePlus's model.
    byteplus = Settings(jobs_table_name="t", provider_api="ark", api_base_url=BYTEPLUS_ARK_BASE_URL, ratio="16:9")
    with pytest.raises(InvalidInput, match="retired on BytePlus"):
        resolve_request(byteplus, {"model": PRO_1_5})


def test_retirement_is_per_platform_and_from_its_date():
    assert resolve_request(ARK, {"model": PRO_1_5}).model == PRO_1_5  # Volcengine has not retired it

    def ask(today: date):
        return check_request(
            PRO_1_5_BYTEPLUS,
            mode=ImageMode.FIRST_FRAME,
            image_count=1,
            duration=5,
            resolution="720p",
            generate_audio=False,
            catalogue=BUILT_IN_CATALOGUE,
            today=today,
        )

    assert ask(date(2026, 11, 10)).id == PRO_1_5
    with pytest.raises(InvalidInput, match="retired"):
        ask(date(2026, 11, 11))


def test_an_operator_can_still_allow_a_retired_model_through_extra_models():
    declared = json.dumps([{"id": PRO_1_5_BYTEPLUS, "modes": ["first_frame"], "audio": True}])
    outcome, provider = submit({"model": PRO_1_5_BYTEPLUS}, extra_models=declared)
    assert outcome.outcome == "SUBMITTED", outcome.reason
    assert provider.submissions[0]["model"] == PRO_1_5_BYTEPLUS


# --- issue 20: the rows --------------------------------------------------------------------------------------------


def test_the_2_5_rows_as_documented():
    standard, flash = present(BUILT_IN_CATALOGUE.get(SEEDANCE_2_5)), present(BUILT_IN_CATALOGUE.get(FLASH))
    assert standard.resolutions == ("480p", "720p", "1080p", "4k") and standard.draft
    assert flash.resolutions == ("480p", "720p") and not flash.draft
    for spec in (standard, flash):
        assert spec.durations == frozenset(range(4, 31)) and spec.volcengine_id is None
        assert (spec.max_reference_images, spec.max_reference_videos, spec.max_reference_audio) == (30, 10, 10)
        assert not spec.flex and not spec.camera_fixed_modes and not spec.frames
    assert standard.output_formats == ("mp4", "mov")
    check_request(
        FLASH,
        mode=ImageMode.REFERENCE_IMAGES,
        image_count=30,
        duration=30,
        resolution="720p",
        generate_audio=True,
        catalogue=BUILT_IN_CATALOGUE,
        provider_api="ark",
    )


def test_frames_and_camera_fixed_belong_to_the_1_x_models_only():
    for spec in BUILT_IN_MODELS:
        if spec.id.startswith(("dreamina-", "doubao-seedance-2")):
            assert not spec.frames and not spec.camera_fixed_modes and not spec.flex, spec.id
        assert ImageMode.REFERENCE_IMAGES not in spec.camera_fixed_modes, spec.id


def test_extra_models_cannot_allow_the_text_only_model_through_an_alias():
    for entry in (
        {"id": "my-t2v", "aliases": [LITE_T2V]},
        {"id": "my-t2v", "byteplus_id": "seedance-1-0-lite-t2v-250428"},
    ):
        with pytest.raises(ValidationError, match="text-to-video only and cannot be allowed"):
            Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, extra_models=json.dumps([entry]))


def test_every_catalogue_row_and_its_sources_are_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    models = text[text.index("\n## Models") :]
    models = models[: models.index("\n## ", 1)]
    for spec in BUILT_IN_MODELS:
        for name in spec.ids:
            assert f"`{name}`" in models, f"{name} is not in docs/provider-api.md, Models"
        assert spec.sources, f"{spec.id} names no source"
        for key in spec.sources:
            assert re.search(rf"^- \[{re.escape(key)}\] ", models, re.MULTILINE), f"source {key} is not listed"


def test_the_demo_names_only_current_models():
    for name, metadata in DEMO_REQUESTS.items():
        model = metadata.get("model", PRO)
        resolve_request(UNIFIED, metadata)  # allowed as the demo sends it
        spec = present(BUILT_IN_CATALOGUE.get(model))
        assert not spec.retired, f"the demo's {name} uses {model}, retired on {spec.retired[0].platform}"


def test_a_job_left_to_the_model_s_duration_is_budgeted_at_the_model_s_longest():
    runtime, store, storage, provider = make_runtime(provider_api="ark")
    storage.add("in-bucket", "uploads/cat.jpg", image_bytes(), {"model": PRO_1_5, "duration": "-1", "ratio": "16:9"})
    outcome = accept_upload(Upload(bucket="in-bucket", key="uploads/cat.jpg", sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "SUBMITTED", outcome.reason
    assert provider.submissions[0]["duration"] == -1
    job = store.job(present(outcome.job_id))
    assert job.estimated_tokens == estimate_tokens("720p", "16:9", 12)  # 1.5 pro makes up to 12 s


def test_the_duration_default_is_checked_per_job_against_the_model_and_dialect():
    two = Settings(jobs_table_name="t", provider_api="ark", ratio="16:9", model=SEEDANCE_2, duration=-1)
    assert resolve_request(two, {}).duration == -1
    with pytest.raises(InvalidInput, match=r"offers durations 2-12 s, not -1"):
        resolve_request(Settings(jobs_table_name="t", provider_api="ark", ratio="16:9", duration=-1), {})
    gateway = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, duration=7)
    with pytest.raises(InvalidInput, match="offers durations 5 or 10 s with the unified gateway, not 7"):
        resolve_request(gateway, {})
    with pytest.raises(ValidationError, match="Duration must be"):
        Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, duration=0)
