"""Per-job callback tokens and URLs, and the settings that turn callbacks on."""

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from seedance_pipeline.rules.callback_token import callback_token, callback_url_for, is_job_id, token_matches
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL

KEY = "Zq8" * 21 + "x"  # 64 letters and digits, like the stack's generated secret
job_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_the_token_is_the_documented_hmac_in_unpadded_base64url():
    job_id = "0123456789abcdef0123456789abcdef"
    digest = hmac.new(KEY.encode(), b"seedance-callback/v1/" + job_id.encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert callback_token(KEY, job_id) == expected and "=" not in expected and len(expected) == 43
    assert token_matches(KEY, job_id, expected)


@given(job_ids, job_ids)
def test_a_token_for_one_job_never_verifies_for_another(job_x, job_y):
    token = callback_token(KEY, job_x)
    assert token_matches(KEY, job_y, token) is (job_x == job_y)


@given(job_ids, st.data())
def test_any_altered_token_fails(job_id, data):
    token = callback_token(KEY, job_id)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(B64URL).filter(lambda c: c != token[position]))
    altered = token[:position] + replacement + token[position + 1 :]
    assert not token_matches(KEY, job_id, altered)
    assert not token_matches(KEY, job_id, token[:-1])
    assert not token_matches(KEY, job_id, token + data.draw(st.sampled_from(B64URL)))
    assert not token_matches(KEY + "x", job_id, token)


@pytest.mark.parametrize(
    "job_id",
    [
        "",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef,123456789abcdef",
        None,
        12345,
    ],
)
def test_only_32_lowercase_hex_characters_are_a_job_id(job_id):
    assert not is_job_id(job_id)
    assert not token_matches(KEY, job_id, "A" * 43)


def test_a_non_ascii_token_is_refused_rather_than_compared():
    job_id = "0123456789abcdef0123456789abcdef"
    token = callback_token(KEY, job_id)
    assert not token_matches(KEY, job_id, token[:-1] + "é")


@pytest.mark.parametrize(
    ("base", "prefix"),
    [
        ("https://abc.lambda-url.us-east-1.on.aws/", "https://abc.lambda-url.us-east-1.on.aws/?"),
        ("https://cb.example.com/hook?", "https://cb.example.com/hook?"),
        ("https://cb.example.com/hook?stack=a", "https://cb.example.com/hook?stack=a&"),
        ("https://cb.example.com/hook?stack=a&", "https://cb.example.com/hook?stack=a&"),
    ],
)
def test_the_callback_url_joins_the_job_and_token_to_any_query_the_base_has(base, prefix):
    job_id = "0123456789abcdef0123456789abcdef"
    token = callback_token(KEY, job_id)
    url = callback_url_for(base, job_id, token)
    assert url.startswith(prefix)
    query = parse_qs(urlsplit(url).query)
    assert query["job"] == [job_id] and query["token"] == [token]


def stack(**fields):
    return Settings(jobs_table_name="jobs", api_base_url=GATEWAY_URL, **fields)


@pytest.mark.parametrize(
    ("fields", "sends"),
    [
        ({}, False),
        ({"provider_api": "ark", "callback_url": "https://cb.example.com/", "callback_signing_secret_id": "s"}, True),
        ({"callback_url": "https://cb.example.com/", "callback_signing_secret_id": "s"}, False),
        (
            {"callback_url": "https://cb.example.com/", "callback_signing_secret_id": "s", "callback_field": "notify"},
            True,
        ),
        ({"provider_api": "ark", "callback_field": "notify"}, False),
    ],
)
def test_a_stack_sends_callbacks_only_with_a_url_and_a_field_its_dialect_reads(fields, sends):
    assert stack(**fields).sends_callbacks is sends


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"callback_url": "http://cb.example.com/", "callback_signing_secret_id": "s"}, "https"),
        ({"callback_url": "http://127.0.0.1:9000/", "callback_signing_secret_id": "s"}, "https"),
        ({"callback_url": "ftp://cb.example.com/", "callback_signing_secret_id": "s"}, "https"),
        ({"callback_url": "https:///nohost", "callback_signing_secret_id": "s"}, "https"),
        ({"callback_url": "https://cb.example.com/"}, "CALLBACK_SIGNING_SECRET_ID"),
        ({"callback_field": "bad field"}, "CALLBACK_FIELD"),
    ],
)
def test_unusable_callback_settings_stop_the_cold_start_with_a_reason(fields, complaint):
    with pytest.raises(ValidationError, match=complaint):
        stack(**fields)


def test_plain_http_callbacks_are_allowed_on_loopback_for_the_local_stack_only():
    local = stack(callback_url="http://127.0.0.1:9000/", callback_signing_secret_id="s", allow_private_downloads=True)
    assert local.callback_url == "http://127.0.0.1:9000/"
    with pytest.raises(ValidationError, match="https"):
        stack(callback_url="http://10.0.0.5:9000/", callback_signing_secret_id="s", allow_private_downloads=True)
