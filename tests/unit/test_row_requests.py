"""A batch file's rows are resolved with each distinct set of fields but the prompt checked once (for speed): every
row must still get exactly what resolve_request gives it alone, the request or the refusal, in any order of rows."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.row_requests import RowRequests
from seedance_pipeline.rules.video_request import resolve_request
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, default_prompt="Default move")
ARK = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, provider_api="ark")

# Valid and invalid values alike: a refusal must come from the same field with the same words.
FIELDS: dict[str, Any] = {
    "prompt": st.sampled_from(["", "  ", "a cat", "x" * 900, "=?UTF-8?B?5LiA5Y+q54yr?=", "=?UTF-8?B?%%%?=", "100% ok"]),
    "model": st.sampled_from(["doubao-seedance-1-0-pro-250528", "doubao-seedance-1-0-lite-i2v-250428", "no-such"]),
    "resolution": st.sampled_from(["480p", "720p", "1080p", "4k"]),
    "ratio": st.sampled_from(["16:9", "adaptive", "5:4"]),
    "duration": st.sampled_from(["5", "10", "7", "x"]),
    "seed": st.sampled_from(["1", "42", "-1", "99999999999", "nope"]),
    "watermark": st.sampled_from(["true", "false", "maybe"]),
    "task-type": st.sampled_from(["r2v"]),
    "output-format": st.sampled_from(["mp4", "gif"]),
}
rows = st.lists(
    st.tuples(
        st.fixed_dictionaries({}, optional=FIELDS),
        st.sampled_from(list(ImageMode)),
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=12,
)


def _alone(settings_: Settings, overrides: dict[str, str], mode: ImageMode, count: int) -> Any:
    try:
        return resolve_request(
            settings_, overrides, mode=mode, image_count=count, source="the row's", code=ErrorCode.INVALID_BATCH
        )
    except InvalidInput as exc:
        return (type(exc), exc.code, exc.message)


def _memoised(requests: RowRequests, overrides: dict[str, str], mode: ImageMode, count: int) -> Any:
    try:
        return requests.resolve(overrides, mode=mode, image_count=count)
    except InvalidInput as exc:
        return (type(exc), exc.code, exc.message)


@settings(max_examples=300, deadline=None)
@given(rows, st.sampled_from([SETTINGS, ARK]))
def test_every_row_gets_what_resolve_request_gives_it_alone(batch: list[Any], settings_: Settings) -> None:
    requests = RowRequests(settings_, source="the row's", code=ErrorCode.INVALID_BATCH)
    for overrides, mode, count in batch:
        assert _memoised(requests, overrides, mode, count) == _alone(settings_, overrides, mode, count)


def test_rows_that_differ_only_in_prompt_keep_their_own_prompt() -> None:
    requests = RowRequests(SETTINGS, source="the row's", code=ErrorCode.INVALID_BATCH)
    first = requests.resolve({"prompt": "a cat", "duration": "10"}, mode=ImageMode.FIRST_FRAME, image_count=1)
    second = requests.resolve({"prompt": "y" * 900, "duration": "10"}, mode=ImageMode.FIRST_FRAME, image_count=1)
    third = requests.resolve({"duration": "10"}, mode=ImageMode.FIRST_FRAME, image_count=1)
    assert (first.prompt, first.prompt_truncated) == ("a cat", False)
    assert (second.prompt, second.prompt_truncated) == ("y" * 800, True)
    assert third.prompt == "Default move"
    assert first.model_copy(update={"prompt": "Default move"}) == third
