"""The native Ark v3 dialect through real sockets: paths, the id of a created task, every status and shape a task
answer comes in, the look-up of a lost submission in the task list, and cancel. The shared policy (what a refusal
proves, retries, deadlines) is the unified client's and is covered by test_provider_answers.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from seedance_pipeline.adapters.ark_dialect import LIST_MAX_PAGES
from seedance_pipeline.adapters.provider_client import ProviderClient, SeedanceClient, ark_client
from seedance_pipeline.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable, SubmissionUncertain
from seedance_pipeline.models import ProviderState, VideoRequest
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.video_request import ark_body
from tests.support.raw_http import Answer, RawHttpServer, json_answer

TASKS = "/api/v3/contents/generations/tasks"
NOW = time.time()


@pytest.fixture(scope="module")
def server() -> Iterator[RawHttpServer]:
    server = RawHttpServer()
    yield server
    server.close()


def client(server: RawHttpServer) -> ProviderClient:
    return ark_client(server.base_url + "/api/v3", "sk-test", retries=0)


def a_request(**changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "prompt": "A slow push in",
        "model": "doubao-seedance-1-0-pro-250528",
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "watermark": False,
        "camerafixed": False,
        "return_last_frame": False,
        "generate_audio": False,
    }
    return VideoRequest(**{**fields, **changes})


def body(**changes: Any) -> dict[str, Any]:
    return ark_body(a_request(**changes), ["https://img.example.com/cat.png"], ImageMode.FIRST_FRAME)


def task(status: str, **fields: Any) -> Answer:
    return json_answer(
        200, json.dumps({"id": "cgt-1", "model": "doubao-seedance-1-0-pro-250528", "status": status, **fields})
    )


# --- create -----------------------------------------------------------------------------------------------------


def test_a_creation_posts_to_the_tasks_path_and_reads_the_native_id(server):
    server.answer(json_answer(200, '{"id": "cgt-20250831141439-sqmgf"}'))
    assert client(server).submit(body()) == "cgt-20250831141439-sqmgf"
    assert server.requests == [("POST", TASKS)]


@pytest.mark.parametrize("answer", ['{"task_id": "cgt-1"}', '{"id": ""}', '{"id": {"nested": 1}}', "{}"])
def test_a_creation_answer_without_a_native_id_is_uncertain(server, answer):
    # The gateway's task_id is not where Ark puts the id: an answer without `id` says nothing we can query.
    server.answer(json_answer(200, answer))
    with pytest.raises(SubmissionUncertain):
        client(server).submit(body())


def test_a_numeric_id_is_kept_as_text(server):
    server.answer(json_answer(200, '{"id": 12345}'))
    assert client(server).submit(body()) == "12345"


def test_ark_error_bodies_are_clear_refusals(server):
    server.answer(json_answer(400, '{"error": {"code": "InvalidParameter", "message": "ratio"}}'))
    with pytest.raises(ProviderRejected) as refused:
        client(server).submit(body())
    assert refused.value.code == "InvalidParameter"
    server.answer(json_answer(429, '{"error": {"code": "ModelAccountRpmRateLimitExceeded", "message": "rpm"}}'))
    with pytest.raises(ProviderThrottled):
        client(server).submit(body())


# --- get --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", ProviderState.PENDING),
        ("running", ProviderState.RUNNING),
        ("succeeded", ProviderState.SUCCEEDED),
        ("failed", ProviderState.FAILED),
        ("cancelled", ProviderState.FAILED),
        ("expired", ProviderState.FAILED),
        (" Running ", ProviderState.RUNNING),
        ("something-new", ProviderState.PENDING),
    ],
)
def test_each_ark_status_maps_to_a_provider_state(server, status, state):
    server.answer(task(status))
    result = client(server).get("cgt-1")
    assert result.state is state
    assert server.requests == [("GET", f"{TASKS}/cgt-1")]


def test_a_success_carries_the_content_urls_and_usage_even_with_numbers_as_strings(server):
    server.answer(
        task(
            "succeeded",
            content={"video_url": "https://cdn.example.com/v.mp4", "last_frame_url": "https://cdn.example.com/l.png"},
            usage={"completion_tokens": "108900", "total_tokens": "108900"},
            seed="42",
            duration="5",
            created_at="1756620879",
            framespersecond="24",
        )
    )
    result = client(server).get("cgt-1")
    assert (result.video_url, result.last_frame_url) == (
        "https://cdn.example.com/v.mp4",
        "https://cdn.example.com/l.png",
    )
    assert result.usage == {"completion_tokens": 108900, "total_tokens": 108900}
    assert result.task_id == "cgt-1" and not result.malformed_url


def test_a_task_with_nothing_but_an_id_is_pending(server):
    server.answer(json_answer(200, '{"id": "cgt-1"}'))
    result = client(server).get("cgt-1")
    assert result.state is ProviderState.PENDING and result.video_url is None and result.usage is None


def test_a_success_without_content_has_no_url_and_a_content_url_that_is_not_text_is_malformed(server):
    server.answer(task("succeeded"))
    assert client(server).get("cgt-1").video_url is None
    server.answer(task("succeeded", content={"video_url": ["https://cdn.example.com/v.mp4"]}))
    assert client(server).get("cgt-1").malformed_url


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            {"code": "OutputVideoSensitiveContentDetected", "message": "may contain sensitive information"},
            "OutputVideoSensitiveContentDetected: may contain sensitive information",
        ),
        ({"message": "only a message"}, "only a message"),
        ({"code": "InternalServiceError"}, "InternalServiceError"),
        (None, "the provider reported failed without a reason"),
        ("a string, not an object", "the provider reported failed without a reason"),
    ],
)
def test_a_failure_reason_is_the_error_code_and_message(server, error, reason):
    server.answer(task("failed", error=error))
    assert client(server).get("cgt-1").failure_reason == reason


def test_an_unknown_task_is_definitive_and_a_server_error_is_asked_again(server):
    server.answer(json_answer(404, '{"error": {"code": "ResourceNotFound", "message": "no such task"}}'))
    with pytest.raises(ProviderRejected):
        client(server).get("cgt-1")
    server.answer(json_answer(500, '{"error": {"code": "InternalServiceError", "message": "x"}}'))
    with pytest.raises(ProviderUnavailable):
        client(server).get("cgt-1")


# --- look-up of a lost submission ---------------------------------------------------------------------------------


def listed(*items: dict[str, Any], total: int | None = None) -> Answer:
    return json_answer(200, json.dumps({"total": len(items) if total is None else total, "items": list(items)}))


def item(task_id: str, *, created_at: Any = NOW, **fields: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "model": "doubao-seedance-1-0-pro-250528",
        "status": "queued",
        "created_at": created_at,
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "seed": SEED,
        **fields,
    }


# The seed the job sent (and the task reports): what tells two tasks of identical requests apart in the list.
SEED = 1_234_567


def find(server: RawHttpServer, sent: dict[str, Any] | None = None) -> str | None:
    return client(server).find_task(sent or body(ratio="16:9", seed=SEED), since=NOW - 60, until=NOW + 60)


def test_exactly_one_matching_task_is_found_with_the_model_filter_newest_page_first(server):
    server.answer(listed(item("cgt-ours"), item("cgt-older", created_at=NOW - 3600)))
    assert find(server) == "cgt-ours"
    method, path = server.requests[0]
    assert method == "GET" and path.startswith(TASKS + "?")
    assert "filter.model=doubao-seedance-1-0-pro-250528" in path and "page_size=100" in path


def test_numbers_as_strings_and_settings_the_list_leaves_out_still_match(server):
    shown = item("cgt-ours", created_at=str(int(NOW)), duration="5", seed=str(SEED))
    server.answer(listed(shown | {"ratio": "16:9"}))
    assert find(server) == "cgt-ours"
    bare = {"id": "cgt-bare", "model": "doubao-seedance-1-0-pro-250528", "created_at": NOW, "seed": SEED}
    server.answer(listed(bare))
    assert find(server) == "cgt-bare"


def test_a_listed_task_that_shows_no_seed_is_never_ours(server):
    # The seed is the one field that can tell two identical requests apart: a task that does not show it proves
    # nothing, and nothing else the list shows (never the prompt, images or callback_url) can stand in for it.
    bare = {"id": "cgt-bare", "model": "doubao-seedance-1-0-pro-250528", "created_at": NOW}
    server.answer(listed(bare, item("cgt-null-seed", seed=None)))
    assert find(server) is None


@pytest.mark.parametrize("seed", [None, -1])
def test_a_request_without_a_seed_of_its_own_finds_nothing(server, seed):
    # No seed, or -1 (the platform draws one and the task reports what it drew): every identical request's task
    # would match, so none is adopted.
    server.answer(listed(item("cgt-someone-elses", seed=987)))
    assert find(server, body(ratio="16:9", seed=seed)) is None


def test_a_callback_url_or_prompt_the_list_leaves_out_is_not_taken_as_agreement(server):
    # The case: the other upload's task, same settings and time, differing in the seed only.
    server.answer(listed(item("cgt-other-upload", seed=SEED + 1)))
    sent = body(ratio="adaptive", seed=SEED) | {"callback_url": "https://cb.example.com/?job=ours&token=t"}
    assert find(server, sent) is None


def test_no_match_finds_nothing(server):
    server.answer(listed())
    assert find(server) is None
    server.answer(
        listed(
            item("cgt-other-model", model="doubao-seedance-1-0-lite-i2v-250428"),
            item("cgt-too-old", created_at=NOW - 600),
            item("cgt-other-size", resolution="1080p"),
            item("cgt-other-length", duration=10),
            item("cgt-other-ratio", ratio="9:16"),
            item("cgt-other-seed", seed=7),
            item("cgt-no-time", created_at=None),
            item("cgt-other-prompt", content=[{"type": "text", "text": "another prompt"}]),
        )
    )
    assert find(server) is None


def test_two_matching_tasks_find_nothing(server):
    server.answer(listed(item("cgt-a"), item("cgt-b", created_at=NOW + 1)))
    assert find(server) is None


def test_a_ratio_left_to_the_provider_matches_whatever_ratio_it_chose(server):
    server.answer(listed(item("cgt-ours", ratio="4:3")))
    assert find(server, body(ratio="adaptive", seed=SEED)) == "cgt-ours"


def test_a_full_page_inside_the_window_reads_the_next_page_for_a_second_match(server):
    others = [item(f"cgt-{n}", resolution="480p", created_at=NOW + 1) for n in range(99)]
    server.answer(listed(item("cgt-ours"), *others, total=500), listed(item("cgt-old", created_at=NOW - 3600)))
    assert find(server) == "cgt-ours"
    assert "page_num=2" in server.requests[1][1]
    server.answer(listed(item("cgt-ours"), *others, total=500), listed(item("cgt-twin", created_at=NOW - 30)))
    assert find(server) is None  # two tasks match across the pages: ambiguous
    server.answer(listed(item("cgt-ours"), *others[:98], item("cgt-old", created_at=NOW - 3600), total=500))
    assert find(server) == "cgt-ours"
    assert len(server.requests) == 1  # that page already reached past the window


def test_a_window_the_page_limit_cannot_cover_finds_nothing(server):
    full = [item(f"cgt-{n}", resolution="480p", created_at=NOW + 1) for n in range(100)]
    server.answer(listed(item("cgt-ours"), *full[:99], total=900), *(listed(*full, total=900) for _ in range(4)))
    assert find(server) is None
    assert len(server.requests) == LIST_MAX_PAGES


@pytest.mark.parametrize("answer", [json_answer(200, '{"total": 0}'), json_answer(200, "[]"), Answer(200, b"<html>")])
def test_a_list_answer_that_is_not_a_list_of_tasks_is_unavailable(server, answer):
    server.answer(answer)
    with pytest.raises(ProviderUnavailable):
        find(server)


def test_the_unified_dialect_has_no_list_and_asks_nothing(server):
    server.answer()
    unified = SeedanceClient(server.base_url, "sk-test", retries=0)
    assert unified.find_task({"model": "m"}, since=0, until=NOW) is None
    assert unified.cancel("cgt-1") is False
    assert server.requests == []


# --- cancel -------------------------------------------------------------------------------------------------------


def test_a_cancel_is_a_delete_of_the_task(server):
    server.answer(json_answer(200, "{}"))
    assert client(server).cancel("cgt-1") is True
    assert server.requests == [("DELETE", f"{TASKS}/cgt-1")]


def test_a_running_task_that_cannot_be_cancelled_is_refused_without_asking_again(server):
    server.answer(
        json_answer(409, '{"error": {"code": "InvalidAction", "message": "running tasks cannot be cancelled"}}')
    )
    with pytest.raises(ProviderRejected, match="running tasks cannot be cancelled"):
        ark_client(server.base_url + "/api/v3", "sk-test", retries=3, backoff_factor=0.01).cancel("cgt-1")
    assert len(server.requests) == 1
