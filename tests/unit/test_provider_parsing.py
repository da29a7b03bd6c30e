import pytest

from seedance_pipeline.adapters.provider_client import parse_task
from seedance_pipeline.models import ProviderState

URL = "https://cdn.example.com/v.mp4"


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "SUCCESS", "data": {"output": URL}},
        {"status": "SUCCESS", "data": {"outputs": [URL, "https://other"]}},
        {"status": "SUCCESS", "result_url": URL},
        {"status": "SUCCESS", "data": {"content": {"video_url": URL}}},
        {"status": "SUCCESS", "data": {"data": {"content": {"video_url": URL}}}},
        {"status": "SUCCESS", "video_url": URL},
        {"status": "SUCCESS", "url": URL},
        {"status": "succeeded", "data": {"output": URL}},
        {"status": "SUCCESS", "fail_reason": URL, "data": {"output": URL}},
    ],
    ids=["output", "outputs", "result_url", "content", "nested", "video_url", "url", "lowercase", "old-gateway"],
)
def test_the_video_url_is_found_wherever_the_gateway_puts_it(payload):
    task = parse_task("t1", payload)
    assert task.state is ProviderState.SUCCEEDED
    assert task.video_url == URL
    assert task.failure_reason is None


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NOT_START", ProviderState.PENDING),
        ("SUBMITTED", ProviderState.PENDING),
        ("QUEUED", ProviderState.PENDING),
        ("queued", ProviderState.PENDING),
        ("UNKNOWN", ProviderState.PENDING),
        ("IN_PROGRESS", ProviderState.RUNNING),
        ("running", ProviderState.RUNNING),
        ("FAILURE", ProviderState.FAILED),
        ("failed", ProviderState.FAILED),
        ("cancelled", ProviderState.FAILED),
        ("expired", ProviderState.FAILED),
        ("something-new", ProviderState.PENDING),
    ],
)
def test_statuses_are_read_loosely(status, state):
    assert parse_task("t1", {"status": status}).state is state


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"status": "FAILURE", "fail_reason": "moderation"}, "moderation"),
        ({"status": "FAILURE", "data": {"error": {"message": "bad frame"}}}, "bad frame"),
        ({"status": "failed", "error": {"message": "quota"}}, "quota"),
        ({"status": "FAILURE", "message": "plain"}, "plain"),
        ({"status": "expired"}, "the provider reported expired without a reason"),
    ],
)
def test_failure_text_comes_from_the_first_place_that_has_it(payload, reason):
    assert parse_task("t1", payload).failure_reason == reason


def test_last_frame_and_usage_are_read():
    task = parse_task(
        "t1",
        {
            "status": "SUCCESS",
            "data": {"output": URL, "content": {"last_frame_url": "https://x/l.png"}},
            "usage": {"t": 1},
        },
    )
    assert task.last_frame_url == "https://x/l.png" and task.usage == {"t": 1}


def test_a_non_string_url_is_flagged_not_followed():
    task = parse_task("t1", {"status": "SUCCESS", "data": {"output": 12345}})
    assert task.video_url is None and task.malformed_url


def test_a_wrapped_task_is_unwrapped():
    task = parse_task("t1", {"code": 0, "data": {"status": "SUCCESS", "task_id": "t1", "data": {"output": URL}}})
    assert task.state is ProviderState.SUCCEEDED and task.video_url == URL
