import pytest

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.video_request import provider_body, resolve_request
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(
    jobs_table_name="t",
    api_base_url=GATEWAY_URL,
    resolution="720p",
    ratio="16:9",
    duration=5,
    default_prompt="Default move",
)


def test_template_defaults_apply_without_metadata():
    request = resolve_request(SETTINGS, {})
    assert request.prompt == "Default move"
    assert (request.resolution, request.ratio, request.duration, request.seed) == ("720p", "16:9", 5, None)
    assert request.model == "doubao-seedance-1-0-pro-250528"


def test_metadata_overrides_every_field():
    request = resolve_request(
        SETTINGS,
        {
            "prompt": "A cat yawns",
            "model": "doubao-seedance-1-0-lite-i2v-250428",
            "resolution": "480p",
            "ratio": "1:1",
            "duration": "10",
            "seed": "2147483647",
            "watermark": "true",
            "camerafixed": "TRUE",
            "return-last-frame": "yes",
            "generate-audio": "false",
        },
    )
    assert request.prompt == "A cat yawns"
    assert request.model.endswith("lite-i2v-250428")
    assert (request.resolution, request.ratio, request.duration, request.seed) == ("480p", "1:1", 10, 2147483647)
    assert request.watermark and request.camerafixed and request.return_last_frame and not request.generate_audio


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("resolution", "4k", "allowed: 480p, 720p, 1080p"),
        ("ratio", "2:1", "allowed: 21:9"),
        ("duration", "7", "5 or 10"),
        ("seed", "-1", "0 to 2147483647"),
        ("seed", "2147483648", "0 to 2147483647"),
        ("seed", "abc", "0 to 2147483647"),
        ("model", "doubao-seedance-1-0-lite-t2v-250428", "image-to-video models"),
        ("model", "gpt-video", "image-to-video models"),
        ("watermark", "maybe", "true or false"),
    ],
)
def test_invalid_metadata_names_the_field_and_the_allowed_values(field, value, named):
    with pytest.raises(InvalidInput) as caught:
        resolve_request(SETTINGS, {field: value})
    assert f"'{field}'" in caught.value.message
    assert named in caught.value.message
    assert caught.value.code == "INVALID_METADATA"


def test_a_long_prompt_is_cut_to_800_characters_and_flagged():
    request = resolve_request(SETTINGS, {"prompt": "x" * 1000})
    assert len(request.prompt) == 800
    assert request.prompt_truncated


def test_rfc2047_and_percent_encoded_prompts_are_decoded():
    encoded = "=?UTF-8?B?5LiA5Y+q54yr5Zyo6Zuq5Lit5aWU6LeR?="
    assert resolve_request(SETTINGS, {"prompt": encoded}).prompt == "一只猫在雪中奔跑"
    assert resolve_request(SETTINGS, {"prompt": "caf%C3%A9%20au%20lait"}).prompt == "café au lait"
    assert resolve_request(SETTINGS, {"prompt": "100% real"}).prompt == "100% real"


def test_provider_body_carries_images_and_leaves_out_unset_seed():
    body = provider_body(resolve_request(SETTINGS, {}), ["https://x/y.jpg"])
    assert body["images"] == ["https://x/y.jpg"]
    assert "seed" not in body and "prompt_truncated" not in body
    assert body["camerafixed"] is False


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("=?UTF-8?B?A?=", "HeaderParseError"),  # a base64 payload one character long
        ("caf=?UTF-8?B?w6k=?= =?UTF-8?B?QUJDR?=", "HeaderParseError"),  # the second word is the broken one
        ("=?ütf-8?Q?a?=", "CharsetError"),  # S3 hands back whatever charset name the uploader wrote
        ("=?x-unknown?B?QQ==?=", "LookupError"),
        ("=?UTF-8?Q?=FF?=", "UnicodeDecodeError"),
        ("=?unicode_escape?Q?=5Cud800?=", "not valid Unicode"),  # decodes to a lone surrogate
    ],
    ids=["one-char-base64", "second-word-broken", "non-ascii-charset", "unknown-charset", "bad-utf8", "lone-surrogate"],
)
def test_a_malformed_encoded_prompt_is_invalid_metadata_naming_the_problem(prompt, named):
    with pytest.raises(InvalidInput) as caught:
        resolve_request(SETTINGS, {"prompt": prompt})
    assert caught.value.code == "INVALID_METADATA"
    assert "'prompt'" in caught.value.message and named in caught.value.message
