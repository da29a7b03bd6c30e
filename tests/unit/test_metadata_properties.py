"""Generated: whatever an uploader writes into S3 metadata, decoding gives text or an INVALID_METADATA rejection."""

import base64
import encodings.aliases
import json
from urllib.parse import quote_from_bytes

from hypothesis import example, given
from hypothesis import strategies as st

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import VideoRequest
from seedance_pipeline.rules.video_request import (
    MAX_PROMPT_CHARS,
    METADATA_FIELDS,
    decode_metadata_text,
    resolve_request,
)
from seedance_pipeline.settings import Settings
from tests.support.domain_answers import answer_or_refusal
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL)
# Every codec name Python knows, plus spellings it does not: an uploader picks the charset.
CHARSETS = st.one_of(
    st.sampled_from(sorted(set(encodings.aliases.aliases.values()) | {"UTF-8", "utf-8", "unicode_escape", "rot13"})),
    st.text(max_size=10),
)
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
B_PAYLOADS = st.one_of(
    st.binary(max_size=24).map(lambda raw: base64.b64encode(raw).decode("ascii")),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=12),
)
Q_PAYLOADS = st.lists(
    st.one_of(
        _ASCII.filter(lambda char: char not in "?="),
        st.binary(min_size=1, max_size=1).map(lambda b: f"={b.hex().upper()}"),
    ),
    max_size=12,
).map("".join)
ENCODED_WORDS = st.one_of(
    st.builds(lambda charset, payload: f"=?{charset}?B?{payload}?=", CHARSETS, B_PAYLOADS),
    st.builds(lambda charset, payload: f"=?{charset}?Q?{payload}?=", CHARSETS, Q_PAYLOADS),
    st.builds(
        lambda charset, kind, payload: f"=?{charset}?{kind}?{payload}?=",
        CHARSETS,
        st.text(max_size=2),
        st.text(max_size=8),
    ),
)
RFC2047_LOOKING = st.lists(st.one_of(ENCODED_WORDS, st.text(max_size=4)), min_size=1, max_size=4).map(" ".join)
PERCENT_ENCODED = st.one_of(
    st.binary(max_size=24).map(quote_from_bytes),
    st.lists(
        st.one_of(st.text(max_size=3), st.binary(min_size=1, max_size=1).map(lambda b: f"%{b.hex()}")), max_size=8
    ).map("".join),
)
METADATA_VALUES = st.one_of(st.text(), RFC2047_LOOKING, PERCENT_ENCODED)


def assert_usable_text(text: str) -> None:
    assert isinstance(text, str)
    text.encode("utf-8")  # lands in a JSON body and a DynamoDB item


@given(METADATA_VALUES)
@example("=?UTF-8?B?A?=")  # HeaderParseError escaped
@example("=?ütf-8?Q?a?=")  # CharsetError escaped
@example("=?unicode_escape?Q?=5Cud800?=")  # decoded to a lone surrogate
def test_decoding_metadata_text_gives_usable_text_or_invalid_metadata(value):
    decoded = answer_or_refusal(lambda: decode_metadata_text(value))
    if isinstance(decoded, InvalidInput):
        assert decoded.code == ErrorCode.INVALID_METADATA and "'prompt'" in decoded.message
    else:
        assert_usable_text(decoded)


@given(st.sampled_from(METADATA_FIELDS), METADATA_VALUES)
@example("prompt", "=?UTF-8?B?A?=")
@example("seed", "9" * 5000)  # int() refuses over 4300 digits with a ValueError
def test_any_single_metadata_field_resolves_to_a_request_or_invalid_metadata(field, value):
    assert_resolves_or_refuses({field: value})


@given(
    st.dictionaries(
        st.sampled_from([*METADATA_FIELDS, *(f"X-Amz-Meta-{name}" for name in METADATA_FIELDS)]), METADATA_VALUES
    )
)
def test_any_mix_of_metadata_resolves_to_a_request_or_invalid_metadata(metadata):
    assert_resolves_or_refuses(metadata)


def assert_resolves_or_refuses(metadata: dict[str, str]) -> None:
    request = answer_or_refusal(lambda: resolve_request(SETTINGS, metadata))
    if isinstance(request, InvalidInput):
        assert request.code == ErrorCode.INVALID_METADATA and request.message
        return
    assert isinstance(request, VideoRequest)
    assert 0 < len(request.prompt) <= MAX_PROMPT_CHARS
    assert_usable_text(request.prompt)
    json.dumps(request.model_dump(), ensure_ascii=False).encode("utf-8")
