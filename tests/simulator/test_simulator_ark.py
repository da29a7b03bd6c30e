"""The native Ark dialect (`/api/v3/contents/generations/tasks`): validation, lifecycle, list, cancel/delete,
expiry, flex, audio and sizes, on the same server, tasks, knobs and counters as the unified dialect."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import av
import pytest
import requests

from seedance_pipeline.rules.model_catalogue import BUILT_IN_MODELS, ImageMode
from seedance_simulator import SimulatorServer
from seedance_simulator.dimensions import frame_count, output_size
from seedance_simulator.validation import MODELS
from tests.support.simulator_client import DEFAULT_IMAGE_URL, MODEL, Client, SimulatorSession

LITE_I2V = "doubao-seedance-1-0-lite-i2v-250428"
LITE_T2V = "doubao-seedance-1-0-lite-t2v-250428"
PRO_FAST = "doubao-seedance-1-0-pro-fast-251015"
PRO_1_5 = "doubao-seedance-1-5-pro-251215"
SHORTEST = 29  # frames: the shortest clip the dialect allows, so renders stay cheap
DROP = object()  # an override that removes the field from the body
# A callback URL on loopback where nothing listens: the simulator really sends callbacks, never off the machine.
NOWHERE = "http://127.0.0.1:9/hook"


def image(role: str | None = "first_frame", url: str = DEFAULT_IMAGE_URL) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


class ArkClient(SimulatorSession):
    """The native dialect's four calls over real HTTP, as a platform SDK would make them."""

    @property
    def tasks_url(self) -> str:
        return self.server.ark_base_url + "/contents/generations/tasks"

    def body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": MODEL,
            "content": [{"type": "text", "text": "a slow push-in over the scene"}, image()],
            "resolution": "480p",
            "ratio": "16:9",
            "frames": SHORTEST,
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not DROP}

    def create_raw(
        self, body: Any = None, headers: dict[str, str] | None = None, **overrides: Any
    ) -> requests.Response:
        payload = self.body(**overrides) if body is None else body
        return self.session.post(
            self.tasks_url, json=payload, headers=self.headers if headers is None else headers, timeout=30
        )

    def create(self, **overrides: Any) -> str:
        response = self.create_raw(**overrides)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def get_raw(self, task_id: str) -> requests.Response:
        return self.session.get(f"{self.tasks_url}/{task_id}", headers=self.headers, timeout=30)

    def get(self, task_id: str) -> dict[str, Any]:
        response = self.get_raw(task_id)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def list(self, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        response = self.session.get(self.tasks_url, params=params or [], headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def delete(self, task_id: str) -> requests.Response:
        return self.session.delete(f"{self.tasks_url}/{task_id}", headers=self.headers, timeout=30)

    def wait(self, task_id: str, statuses: tuple[str, ...], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.get(task_id)
            if answer["status"] in statuses:
                return answer
            assert time.monotonic() < deadline, f"task {task_id} still {answer['status']} after {timeout}s"
            time.sleep(0.02)


@pytest.fixture
def ark(server: SimulatorServer) -> ArkClient:
    return ArkClient(server)


def ark_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the platform's error shape and return its error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "param", "type"}
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


def fetch_streams(url: str) -> tuple[list[str], int, int, int]:
    """The stream kinds of a result MP4, and its video's width, height and frame count."""
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    with av.open(io.BytesIO(response.content), mode="r") as container:
        kinds: list[str] = [str(stream.type) for stream in container.streams]
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return kinds, video.codec_context.width, video.codec_context.height, frames


# -- create and validation --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_render")
def test_create_answers_an_id_in_the_platform_format(ark: ArkClient) -> None:
    response = ark.create_raw()
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id"}
    assert re.fullmatch(r"cgt-\d{14}-[a-z]{5}", response.json()["id"])


def test_the_ark_base_url_ends_like_the_platforms(server: SimulatorServer) -> None:
    assert server.ark_base_url == server.base_url + "/api/v3"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"model": DROP}, "model"),
        ({"model": 7}, "model"),
        ({"content": DROP}, "content"),
        ({"content": []}, "content"),
        ({"content": [{"type": "file_url"}]}, "content[0].type"),
        ({"content": [{"type": "video_url", "role": "reference_video"}, image()]}, "content[0].video_url.url"),
        ({"content": [{"type": "image_url", "image_url": {}}]}, "content[0].image_url.url"),
        ({"content": [{"type": "text", "text": 5}, image()]}, "content[0].text"),
        ({"content": [image(role="middle_frame")]}, "content[0].role"),
        ({"content": [{"type": "text", "text": "only words"}]}, "content"),
        ({"content": [image(role="last_frame")]}, "content"),
        ({"content": [image(), image()]}, "content"),
        ({"content": [image(), image(role=None)]}, "content"),
        ({"content": [image(), image(role="last_frame"), image(role="last_frame")]}, "content"),
        ({"model": LITE_I2V, "content": [image(), image(role="reference_image")]}, "content"),
        ({"content": [image(role="reference_image")]}, "content"),
        ({"model": LITE_I2V, "content": [image(role="reference_image")] * 5}, "content"),
        ({"model": LITE_I2V, "content": [image(role="reference_image")], "resolution": "1080p"}, "resolution"),
        ({"model": PRO_FAST, "content": [image(), image(role="last_frame")]}, "content"),
        ({"model": LITE_T2V}, "content"),
        ({"resolution": "4k"}, "resolution"),
        ({"ratio": "2:1"}, "ratio"),
        ({"frames": 30}, "frames"),
        ({"frames": 25}, "frames"),
        ({"frames": 293}, "frames"),
        ({"frames": DROP, "duration": 13}, "duration"),
        ({"frames": DROP, "model": PRO_1_5, "duration": 3}, "duration"),
        ({"frames": DROP, "duration": "5"}, "duration"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": True}, "seed"),
        ({"execution_expires_after": 3599}, "execution_expires_after"),
        ({"execution_expires_after": 259_201}, "execution_expires_after"),
        ({"service_tier": "fast"}, "service_tier"),
        ({"watermark": "yes"}, "watermark"),
        ({"camera_fixed": 1}, "camera_fixed"),
        ({"generate_audio": "true"}, "generate_audio"),
        ({"return_last_frame": "no"}, "return_last_frame"),
        ({"callback_url": "ftp://example.com/hook"}, "callback_url"),
        ({"frames": DROP, "content": [{"type": "text", "text": "go --dur 13"}, image()]}, "duration"),
        ({"resolution": DROP, "content": [{"type": "text", "text": "go --rs 4k"}, image()]}, "resolution"),
    ],
)
def test_every_invalid_create_is_400_invalid_parameter_naming_the_field(
    ark: ArkClient, server: SimulatorServer, overrides: dict[str, Any], param: str
) -> None:
    error = ark_error(ark.create_raw(**overrides), 400, "InvalidParameter")
    assert error["param"] == param
    assert f"`{param}`" in error["message"]
    assert error["type"] == "BadRequest"
    assert server.counters.tasks_created == 0


def test_an_unknown_model_is_404_invalid_endpoint_or_model_not_found(ark: ArkClient) -> None:
    # ModelNotOpen is the platform's answer for a model that exists but is not activated (issue 18).
    error = ark_error(ark.create_raw(model="doubao-seedance-9-ultra"), 404, "InvalidEndpointOrModel.NotFound")
    assert "doubao-seedance-9-ultra" in error["message"]
    assert error["param"] == "model"


def test_a_text_only_model_with_an_image_is_400_naming_the_content(ark: ArkClient) -> None:
    error = ark_error(ark.create_raw(model=LITE_T2V), 400, "InvalidParameter")
    assert "text-to-video only" in error["message"]


def test_a_body_that_is_not_json_is_400(ark: ArkClient) -> None:
    response = ark.session.post(ark.tasks_url, data=b"{nope", headers=ark.headers, timeout=30)
    ark_error(response, 400, "InvalidParameter")


def test_an_undecodable_image_is_400_naming_its_place_in_content(ark: ArkClient) -> None:
    bad = "data:image/png;base64,aGVsbG8="
    error = ark_error(ark.create_raw(content=[image(url=bad)]), 400, "InvalidParameter")
    assert error["param"] == "content[0].image_url.url"


def test_a_wrong_key_is_401_in_the_platforms_shape(ark: ArkClient, server: SimulatorServer) -> None:
    ark_error(ark.create_raw(headers={"Authorization": "Bearer wrong"}), 401, "AuthenticationError")
    assert server.counters.tasks_created == 0


def test_an_unknown_task_is_404_not_found_for_get_and_delete(ark: ArkClient) -> None:
    ark_error(ark.get_raw("cgt-20250101000000-abcde"), 404, "NotFound")
    ark_error(ark.delete("cgt-20250101000000-abcde"), 404, "NotFound")


def test_injected_faults_reach_the_ark_dialect_too(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.rate_limit_next = 1
    server.knobs.retry_after = 2
    response = ark.create_raw()
    ark_error(response, 429, "ModelAccountRpmRateLimitExceeded")
    assert response.headers["Retry-After"] == "2"
    server.knobs.server_errors_next = 1
    ark_error(ark.get_raw("cgt-20250101000000-abcde"), 500, "InternalServiceError")
    assert server.counters.rate_limited == 1


@pytest.mark.usefixtures("no_render")
@pytest.mark.parametrize(
    "overrides",
    [
        {"seed": -1},
        {"seed": 2**32 - 1},
        {"frames": 289},
        {"frames": DROP, "duration": 12},
        {"execution_expires_after": 3600},
        {"execution_expires_after": 259_200},
        {"service_tier": "flex"},
        {"content": [image(role=None)]},
        {"content": [image(role="last_frame"), image(role="first_frame")]},
        {"model": LITE_I2V, "content": [image(role="reference_image")] * 4, "resolution": "720p"},
        {"model": "seedance-1-0-pro-250528"},
        {"content": [image()]},
        {"callback_url": NOWHERE},
    ],
    ids=[
        "seed-random",
        "seed-max",
        "frames-max",
        "duration-12",
        "expires-min",
        "expires-max",
        "flex",
        "role-optional",
        "last-before-first",
        "four-references",
        "byteplus-id",
        "no-text",
        "callback",
    ],
)
def test_the_edges_of_every_range_are_accepted(ark: ArkClient, overrides: dict[str, Any]) -> None:
    assert ark.create_raw(**overrides).status_code == 200


@pytest.mark.usefixtures("no_render")
def test_text_flags_set_the_output_and_top_level_fields_win(ark: ArkClient, server: SimulatorServer) -> None:
    text = "a lighthouse at dusk --rs 720p --rt 9:16 --dur 10 --seed 42 --cf true --wm true"
    flagged = ark.get(
        ark.create(content=[{"type": "text", "text": text}, image()], resolution=DROP, ratio=DROP, frames=DROP)
    )
    assert (flagged["resolution"], flagged["ratio"], flagged["duration"], flagged["seed"]) == ("720p", "9:16", 10, 42)
    record = server.task(flagged["id"]).request
    assert record.prompt == "a lighthouse at dusk"
    assert record.camerafixed and record.watermark

    overridden = ark.get(
        ark.create(content=[{"type": "text", "text": text}, image()], resolution="480p", seed=7, watermark=False)
    )
    assert (overridden["resolution"], overridden["seed"]) == ("480p", 7)
    assert not server.task(overridden["id"]).request.watermark


@pytest.mark.usefixtures("no_render")
def test_frames_win_over_duration(ark: ArkClient, server: SimulatorServer) -> None:
    answer = ark.get(ark.create(frames=121, duration=99))
    assert answer["frames"] == 121
    assert "duration" not in answer
    assert server.task(answer["id"]).frames == 121


# -- lifecycle --------------------------------------------------------------------------------------------------


def test_a_task_goes_queued_running_succeeded_with_a_playable_video(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.queue_seconds = 0.4
    server.knobs.run_seconds = 0.4
    task_id = ark.create(frames=SHORTEST, return_last_frame=True, seed=5)
    queued = ark.get(task_id)
    assert queued["status"] == "queued"
    assert queued["content"] == {} and queued["error"] is None
    running = ark.wait(task_id, ("running", "succeeded"))
    assert running["status"] == "running"
    done = ark.wait(task_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert done["model"] == MODEL
    assert (done["seed"], done["resolution"], done["ratio"], done["frames"]) == (5, "480p", "16:9", SHORTEST)
    assert done["framespersecond"] == 24
    assert done["created_at"] <= done["updated_at"] <= time.time() + 1
    # Billed as width x height x 24 fps x seconds / 1024, and a frame count is 24 x seconds.
    assert done["usage"] == {
        "completion_tokens": 864 * 480 * SHORTEST // 1024,
        "total_tokens": 864 * 480 * SHORTEST // 1024,
    }
    kinds, width, height, frames = fetch_streams(done["content"]["video_url"])
    assert (kinds, width, height, frames) == (["video"], 864, 480, SHORTEST)
    assert requests.get(done["content"]["last_frame_url"], timeout=30).status_code == 200


@pytest.mark.usefixtures("no_render")
def test_a_duration_task_is_billed_for_24_frames_a_second(ark: ArkClient) -> None:
    done = ark.wait(ark.create(frames=DROP, duration=5, resolution="720p"), ("succeeded",))
    assert done["duration"] == 5
    assert done["usage"]["total_tokens"] == 1248 * 704 * 24 * 5 // 1024  # about 104k, as the price sheet says


@pytest.mark.usefixtures("no_render")
def test_a_failed_task_carries_its_error_and_no_usage(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.fail_next = 1
    done = ark.wait(ark.create(), ("succeeded", "failed"))
    assert done["status"] == "failed"
    assert done["error"]["code"] == "OutputVideoSensitiveContentDetected"
    assert done["usage"]["total_tokens"] == 0
    assert done["content"] == {}


@pytest.mark.usefixtures("no_render")
def test_a_random_seed_is_drawn_and_reported(ark: ArkClient) -> None:
    answer = ark.get(ark.create(seed=-1))
    assert 0 <= answer["seed"] <= 2**31 - 1


@pytest.mark.usefixtures("no_render")
def test_callback_url_is_kept_but_never_shown_in_the_task(ark: ArkClient, server: SimulatorServer) -> None:
    # The platform's task document carries neither the callback URL nor the prompt nor the inputs (issue 18).
    answer = ark.get(ark.create(callback_url=NOWHERE))
    assert "callback_url" not in answer and NOWHERE not in str(answer)
    assert "a slow push-in" not in str(answer) and DEFAULT_IMAGE_URL not in str(answer)
    assert NOWHERE not in str(ark.list())
    assert server.task(answer["id"]).request.callback_url == NOWHERE


@pytest.mark.usefixtures("no_render")
def test_both_dialects_share_one_set_of_tasks_and_counters(ark: ArkClient, server: SimulatorServer) -> None:
    unified = Client(server)
    ark_id = ark.create()
    unified_id = unified.submit()
    assert unified.wait(ark_id)["status"] == "SUCCESS"
    done = ark.wait(unified_id, ("succeeded",))
    assert done["duration"] == 5 and done["usage"]["total_tokens"] > 0
    assert server.counters.submit == 2
    assert server.counters.tasks_created == 2


# -- list -------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_render")
def test_list_filters_by_status_ids_and_model_and_pages_newest_first(ark: ArkClient, server: SimulatorServer) -> None:
    first = ark.create()
    second = ark.create(model=LITE_I2V, resolution="720p")
    ark.wait(first, ("succeeded",))
    ark.wait(second, ("succeeded",))
    server.knobs.never_finish = True
    third = ark.create()
    ark.wait(third, ("running",))

    everything = ark.list()
    assert everything["total"] == 3
    assert [item["id"] for item in everything["items"]] == [third, second, first]
    assert everything["items"][1] == ark.get(second)  # the same shape as Get

    assert [i["id"] for i in ark.list([("filter.status", "succeeded")])["items"]] == [second, first]
    assert [i["id"] for i in ark.list([("filter.status", "running")])["items"]] == [third]
    assert [i["id"] for i in ark.list([("filter.model", LITE_I2V)])["items"]] == [second]
    chosen = ark.list([("filter.task_ids", first), ("filter.task_ids", third)])
    assert (chosen["total"], [i["id"] for i in chosen["items"]]) == (2, [third, first])

    page_two = ark.list([("page_num", "2"), ("page_size", "2")])
    assert (page_two["total"], [i["id"] for i in page_two["items"]]) == (3, [first])
    assert ark.list([("page_num", "3"), ("page_size", "2")])["items"] == []
    assert server.counters.listed == 7


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ([("page_size", "0")], "page_size"),
        ([("page_size", "501")], "page_size"),
        ([("page_num", "x")], "page_num"),
        ([("filter.status", "done")], "filter.status"),
    ],
)
def test_a_bad_list_query_is_400_naming_it(ark: ArkClient, params: list[tuple[str, str]], param: str) -> None:
    response = ark.session.get(ark.tasks_url, params=params, headers=ark.headers, timeout=30)
    assert ark_error(response, 400, "InvalidParameter")["param"] == param


# -- cancel and delete ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_render")
def test_delete_cancels_a_queued_task_then_deletes_its_record(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.queue_seconds = 60.0
    task_id = ark.create()
    assert ark.get(task_id)["status"] == "queued"
    response = ark.delete(task_id)
    assert response.status_code == 200, response.text
    cancelled = ark.get(task_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["usage"]["total_tokens"] == 0
    assert Client(server).query(task_id)["status"] == "cancelled"  # the gateway passes the upstream status on
    assert server.counters.cancelled == 1
    # A cancelled task's record stays: the platform refuses to delete it (issue 18).
    assert ark_error(ark.delete(task_id), 400, "TaskNotCancellable")["param"] == "id"
    assert ark.get(task_id)["status"] == "cancelled"
    assert (server.counters.deleted, server.counters.deletes) == (0, 2)


@pytest.mark.usefixtures("no_render")
def test_a_cancelled_task_never_runs(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.max_running = 1
    server.knobs.never_finish = True
    blocker = ark.create()
    ark.wait(blocker, ("running",))
    waiting = ark.create()
    assert ark.delete(waiting).status_code == 200
    server.knobs.never_finish = False
    ark.wait(blocker, ("succeeded",))
    assert ark.get(waiting)["status"] == "cancelled"
    assert server.task(waiting).started_at is None
    assert server.counters.peak_running == 1


@pytest.mark.usefixtures("no_render")
def test_a_running_task_cannot_be_cancelled(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.never_finish = True
    task_id = ark.create()
    ark.wait(task_id, ("running",))
    error = ark_error(ark.delete(task_id), 400, "TaskNotCancellable")
    assert "running" in error["message"]
    assert ark.get(task_id)["status"] == "running"
    assert server.counters.cancelled == 0


def test_delete_of_a_finished_task_removes_it_and_its_results(ark: ArkClient, server: SimulatorServer) -> None:
    done = ark.wait(ark.create(), ("succeeded",))
    assert requests.get(done["content"]["video_url"], timeout=30).status_code == 200
    assert ark.delete(done["id"]).status_code == 200
    ark_error(ark.get_raw(done["id"]), 404, "NotFound")
    assert requests.get(done["content"]["video_url"], timeout=30).status_code == 404
    assert ark.list()["total"] == 0
    assert server.counters.deleted == 1


# -- expiry and flex --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_render")
def test_a_task_not_finished_within_execution_expires_after_becomes_expired(
    ark: ArkClient, server: SimulatorServer
) -> None:
    server.knobs.execution_expiry_scale = 1e-4  # 3600 s -> 0.36 s
    server.knobs.never_finish = True
    running = ark.create(execution_expires_after=3600)
    ark.wait(running, ("running",))
    server.knobs.queue_seconds = 60.0
    queued = ark.create(execution_expires_after=3600)
    later = ark.create(execution_expires_after=259_200)  # 26 s here: still waiting when the others expire
    for task_id in (running, queued):
        expired = ark.wait(task_id, ("expired",), timeout=10)
        assert expired["error"]["code"] == "TaskExpired"
        assert expired["usage"]["total_tokens"] == 0
    assert ark.get(later)["status"] == "queued"
    assert server.counters.expired == 2
    record = server.task(running)
    assert record.finished_at is not None
    assert record.finished_at - record.submitted_at == pytest.approx(0.36, abs=0.01)


@pytest.mark.usefixtures("no_render")
def test_a_task_that_finishes_in_time_does_not_expire(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.execution_expiry_scale = 1e-4
    done = ark.wait(ark.create(execution_expires_after=3600), ("succeeded", "expired"))
    assert done["status"] == "succeeded"
    time.sleep(0.4)
    assert ark.get(done["id"])["status"] == "succeeded"


@pytest.mark.usefixtures("no_render")
def test_a_flex_task_queues_and_runs_longer_by_the_flex_multiplier(ark: ArkClient, server: SimulatorServer) -> None:
    server.knobs.queue_seconds = 0.1
    server.knobs.run_seconds = 0.2
    server.knobs.flex_multiplier = 4.0
    default = ark.create()
    flex = ark.create(service_tier="flex")
    ark.wait(default, ("succeeded",))
    assert ark.get(flex)["status"] in ("queued", "running")
    ark.wait(flex, ("succeeded",))
    fast, slow = server.task(default), server.task(flex)
    assert fast.finished_at is not None and slow.finished_at is not None
    assert slow.finished_at - slow.submitted_at == pytest.approx(4 * (fast.finished_at - fast.submitted_at), rel=0.1)
    assert ark.get(flex)["service_tier"] == "flex"


# -- audio and sizes --------------------------------------------------------------------------------------------


def test_generate_audio_on_an_audio_model_adds_an_aac_track(ark: ArkClient) -> None:
    # 1.5 pro takes no `frames`: its shortest clip is 4 s.
    done = ark.wait(ark.create(model=PRO_1_5, generate_audio=True, frames=DROP, duration=4), ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    kinds, _, _, frames = fetch_streams(done["content"]["video_url"])
    assert sorted(kinds) == ["audio", "video"]
    assert frames == frame_count(4)
    response = requests.get(done["content"]["video_url"], timeout=30)
    with av.open(io.BytesIO(response.content), mode="r") as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.duration is not None and audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(4.0, abs=0.05)


def test_generate_audio_on_a_silent_model_is_accepted_without_a_track(ark: ArkClient) -> None:
    done = ark.wait(ark.create(model=MODEL, generate_audio=True), ("succeeded", "failed"))
    assert fetch_streams(done["content"]["video_url"])[0] == ["video"]


def test_the_unified_dialect_renders_audio_too(server: SimulatorServer) -> None:
    client = Client(server)
    answer = client.wait(client.submit(model=PRO_1_5, generate_audio=True))
    assert answer["status"] == "SUCCESS", answer
    assert sorted(fetch_streams(answer["data"]["output"])[0]) == ["audio", "video"]


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [("480p", "1:1", (640, 640)), ("720p", "9:16", (704, 1248)), ("1080p", "21:9", (2176, 928))],
)
def test_the_rendered_video_has_the_tables_size(
    ark: ArkClient, resolution: str, ratio: str, size: tuple[int, int]
) -> None:
    done = ark.wait(ark.create(resolution=resolution, ratio=ratio), ("succeeded", "failed"))
    assert fetch_streams(done["content"]["video_url"])[1:3] == size


@pytest.mark.parametrize(
    ("resolution", "sizes"),
    [
        ("480p", [(864, 480), (736, 544), (640, 640), (544, 736), (480, 864), (960, 416)]),
        ("720p", [(1248, 704), (1120, 832), (960, 960), (832, 1120), (704, 1248), (1504, 640)]),
        ("1080p", [(1920, 1088), (1664, 1248), (1440, 1440), (1248, 1664), (1088, 1920), (2176, 928)]),
    ],
)
def test_every_resolution_and_ratio_has_the_documented_size(resolution: str, sizes: list[tuple[int, int]]) -> None:
    ratios = ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9"]
    assert [output_size(resolution, ratio, 1000, 1000) for ratio in ratios] == sizes


@pytest.mark.usefixtures("no_render")
def test_adaptive_reports_the_ratio_it_chose(ark: ArkClient) -> None:
    answer = ark.get(ark.create(ratio="adaptive"))  # the default image is 640x360
    assert answer["ratio"] == "16:9"


# -- the simulator's model table stays the pipeline catalogue's --------------------------------------------------


def _catalogue_names(spec: Any) -> list[str]:
    """The ids a catalogue row may send: its own, and its BytePlus spelling where the row names one."""
    names = [spec.id, getattr(spec, "volcengine_id", None), getattr(spec, "byteplus_id", None)]
    return list(dict.fromkeys(name for name in names if name))


@pytest.mark.parametrize("spec", BUILT_IN_MODELS, ids=lambda spec: spec.id)
def test_the_simulator_models_match_the_pipeline_catalogue(spec: Any) -> None:
    """Every id the catalogue may send is one the simulator knows, with the same capabilities. Iterates over
    whatever rows the catalogue holds; attributes a row does not have (an older catalogue) are not compared."""
    for name in _catalogue_names(spec):
        assert name in MODELS, f"the simulator does not know {name}"
        info = MODELS[name]
        assert info.audio == spec.audio
        assert info.accepts_images == (not spec.text_only)
        if spec.text_only:
            continue
        assert set(info.durations) == set(spec.durations)
        assert info.first_and_last == (ImageMode.FIRST_AND_LAST in spec.modes)
        assert info.max_reference_images == (
            spec.max_reference_images if ImageMode.REFERENCE_IMAGES in spec.modes else 0
        )
        if hasattr(spec, "byteplus_id"):  # the catalogue of issue 20: resolutions and the 2.x capabilities
            assert set(spec.resolutions) - {"4k"} == set(info.resolutions)  # the simulator renders up to 1080p
            if ImageMode.REFERENCE_IMAGES in spec.modes:
                with_references = set(spec.resolutions_for(ImageMode.REFERENCE_IMAGES)) - {"4k"}
                assert set(info.reference_resolutions) == with_references
            assert info.max_reference_videos == getattr(spec, "max_reference_videos", 0)
            assert info.max_reference_audios == getattr(spec, "max_reference_audio", 0)
            assert info.duration_auto == getattr(spec, "model_picks_duration", False)
            assert info.draft == getattr(spec, "draft", False)
            assert info.flex == getattr(spec, "flex", False)
            assert info.frames == getattr(spec, "frames", False)
        elif ImageMode.REFERENCE_IMAGES in spec.modes and info.resolutions == ("480p", "720p", "1080p"):
            assert set(info.reference_resolutions) == set(spec.resolutions_for(ImageMode.REFERENCE_IMAGES))
