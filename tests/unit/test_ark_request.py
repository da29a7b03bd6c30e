"""What an Ark stack sends and how it is configured: the content list with image roles, top-level settings, the
seed range per dialect, the task's own expiry from MaxJobAgeMinutes, and the base URL each dialect needs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.video_request import ark_body, provider_body_for, resolve_request
from seedance_pipeline.settings import BYTEPLUS_ARK_BASE_URL, VOLCENGINE_ARK_BASE_URL, Settings
from tests.support.fakes import GATEWAY_URL

ARK = Settings(jobs_table_name="t", provider_api="ark", ratio="16:9")
UNIFIED = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, ratio="16:9")
LITE = "doubao-seedance-1-0-lite-i2v-250428"


def test_an_ark_body_is_a_content_list_with_the_prompt_then_the_first_frame_and_top_level_settings():
    request = resolve_request(ARK, {"prompt": "A slow push in", "seed": "42", "watermark": "true"})
    body = provider_body_for(ARK, request, ["https://img.example.com/cat.png"], ImageMode.FIRST_FRAME)
    assert body == {
        "model": "doubao-seedance-1-0-pro-250528",
        "content": [
            {"type": "text", "text": "A slow push in"},
            {"type": "image_url", "image_url": {"url": "https://img.example.com/cat.png"}, "role": "first_frame"},
        ],
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "seed": 42,
        "camera_fixed": False,
        "watermark": True,
        "generate_audio": False,
        "return_last_frame": False,
        "service_tier": "default",
        "execution_expires_after": 7200,
    }
    assert "--rs" not in body["content"][0]["text"]  # settings go as fields, never as text flags


def test_image_roles_follow_the_mode_and_the_images_order():
    request = resolve_request(ARK, {"model": LITE}, mode=ImageMode.REFERENCE_IMAGES, image_count=3)
    refs = ark_body(request, ["u1", "u2", "u3"], ImageMode.REFERENCE_IMAGES)
    assert [part.get("role") for part in refs["content"]] == [
        None,
        "reference_image",
        "reference_image",
        "reference_image",
    ]
    pair = ark_body(request, ["first", "last"], ImageMode.FIRST_AND_LAST)
    assert [(p["image_url"]["url"], p["role"]) for p in pair["content"][1:]] == [
        ("first", "first_frame"),
        ("last", "last_frame"),
    ]
    with pytest.raises(ValueError, match="takes 2 image"):
        ark_body(request, ["only-one"], ImageMode.FIRST_AND_LAST)


def test_the_unified_body_is_unchanged_by_the_dialect_switch():
    request = resolve_request(UNIFIED, {"prompt": "p"})
    body = provider_body_for(UNIFIED, request, ["https://img.example.com/cat.png"], ImageMode.FIRST_FRAME)
    assert body["images"] == ["https://img.example.com/cat.png"] and body["prompt"] == "p" and "content" not in body


def test_the_flex_tier_and_the_job_age_reach_the_ark_body_within_arks_bounds():
    request = resolve_request(ARK, {})
    # The default tier: the job's own age; flex: at least Ark's own 48 h (a tier slow by design), at most 72 h.
    for tier, minutes, expected in [
        ("default", 5, 3600),
        ("default", 120, 7200),
        ("flex", 5, 172800),
        ("flex", 120, 172800),
        ("flex", 3000, 180000),
        ("flex", 10080, 259200),
    ]:
        settings = Settings(jobs_table_name="t", provider_api="ark", service_tier=tier, max_job_age_minutes=minutes)
        body = provider_body_for(settings, request, ["u"], ImageMode.FIRST_FRAME)
        assert (body["service_tier"], body["execution_expires_after"]) == (tier, expected)
    with pytest.raises(ValidationError):
        Settings(jobs_table_name="t", provider_api="ark", service_tier="cheap")


@pytest.mark.parametrize(("seed", "ark", "unified"), [("-1", -1, None), ("4294967295", 4294967295, None), ("0", 0, 0)])
def test_the_seed_range_is_the_dialects(seed, ark, unified):
    assert resolve_request(ARK, {"seed": seed}).seed == ark
    if unified is None:
        with pytest.raises(InvalidInput, match="from 0 to 2147483647"):
            resolve_request(UNIFIED, {"seed": seed})
    else:
        assert resolve_request(UNIFIED, {"seed": seed}).seed == unified


@pytest.mark.parametrize("seed", ["-2", "4294967296", "x"])
def test_a_seed_outside_the_ark_range_is_refused_naming_it(seed):
    with pytest.raises(InvalidInput, match="from -1 to 4294967295"):
        resolve_request(ARK, {"seed": seed})


def test_an_ark_stack_defaults_to_volcengine_and_keeps_a_byteplus_url():
    assert ARK.api_base_url == VOLCENGINE_ARK_BASE_URL
    byteplus = Settings(jobs_table_name="t", provider_api="ark", api_base_url=BYTEPLUS_ARK_BASE_URL + "/")
    assert byteplus.api_base_url == BYTEPLUS_ARK_BASE_URL


def test_a_unified_stack_without_a_base_url_fails_at_cold_start_saying_what_to_set(monkeypatch):
    monkeypatch.setenv("JOBS_TABLE_NAME", "t")
    monkeypatch.delenv("API_BASE_URL", raising=False)
    monkeypatch.delenv("PROVIDER_API", raising=False)
    with pytest.raises(
        ValidationError, match=r"API_BASE_URL .*ApiBaseUrl.* is empty: set it to your gateway's base URL"
    ):
        Settings()
    monkeypatch.setenv("API_BASE_URL", "  ")
    with pytest.raises(ValidationError, match="PROVIDER_API=ark"):
        Settings()
    monkeypatch.setenv("PROVIDER_API", "ark")
    assert Settings().api_base_url == VOLCENGINE_ARK_BASE_URL
    monkeypatch.setenv("PROVIDER_API", "unified")
    monkeypatch.setenv("API_BASE_URL", "https://gw.example.com/")
    assert Settings().api_base_url == "https://gw.example.com"


def test_the_old_ark_host_default_is_gone():
    # It pointed the unified dialect's /v2 path at Ark's host, which serves no such path.
    assert Settings.model_fields["api_base_url"].default == ""
