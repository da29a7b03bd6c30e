"""The vendor's own Python client against the simulator, over real HTTP: create (with every optional argument left
unset, which the SDK sends as JSON null; with text flags; each mode of each catalogue model; every content item
kind), get, list with filters and pages, delete in each state, and the error answers the SDK's `ArkAPIError`
reads. When the vendor changes its SDK, these tests are where we find out (issue 18)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import (
    ArkAPIStatusError,
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkInternalServerError,
    ArkNotFoundError,
    ArkRateLimitError,
)

from seedance_pipeline.rules.model_catalogue import BUILT_IN_MODELS, ImageMode
from seedance_simulator import SimulatorServer
from tests.support.simulator_client import DEFAULT_IMAGE_URL

PRO = "doubao-seedance-1-0-pro-250528"
LITE = "doubao-seedance-1-0-lite-i2v-250428"
PRO_1_5 = "doubao-seedance-1-5-pro-251215"
V2 = "doubao-seedance-2-0-260128"
V2_5 = "dreamina-seedance-2-5-260628"
HOOK = "http://127.0.0.1:9/hook?job=j1&token=secret-token"  # nothing listens: callbacks fail quietly
CLIP = "https://media.example.com/reference.mp4"
SOUND = "https://media.example.com/reference.mp3"
PROMPT = "a slow push-in over the harbour"


def text(words: str = PROMPT) -> dict[str, Any]:
    return {"type": "text", "text": words}


def image(role: str = "first_frame") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": DEFAULT_IMAGE_URL}, "role": role}


def video(url: str = CLIP) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}


def audio(url: str = SOUND) -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": url}, "role": "reference_audio"}


def create(ark: Ark, model: str = PRO, content: list[dict[str, Any]] | None = None, **arguments: Any) -> str:
    return str(ark.content_generation.tasks.create(model=model, content=content or [text(), image()], **arguments).id)


def get(ark: Ark, task_id: str) -> Any:
    return ark.content_generation.tasks.get(task_id=task_id)


def wait(ark: Ark, task_id: str, *statuses: str) -> Any:
    """Poll until the task reaches one of `statuses` (a bound on a hung simulator, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while True:
        task = get(ark, task_id)
        if task.status in statuses or time.monotonic() > deadline:
            assert task.status in statuses, task
            return task
        time.sleep(0.05)


def refusal(call: Any, kind: type[ArkAPIStatusError]) -> ArkAPIStatusError:
    with pytest.raises(kind) as caught:
        call()
    return caught.value


# -- create ---------------------------------------------------------------------------------------------------


def test_a_create_with_every_optional_argument_left_unset_is_accepted_with_the_documented_defaults(
    ark: Ark, server: SimulatorServer
) -> None:
    task_id = create(ark)
    sent = server.counters.request_bodies[-1]
    # What the SDK really puts on the wire: every argument its caller left unset, as null.
    assert {name for name, value in sent.items() if value is None} >= {
        "resolution",
        "ratio",
        "duration",
        "frames",
        "seed",
        "camera_fixed",
        "watermark",
        "generate_audio",
        "return_last_frame",
        "callback_url",
        "service_tier",
        "execution_expires_after",
        "priority",
        "draft",
        "safety_identifier",
        "omni_reference_task_type",
    }
    task = get(ark, task_id)
    assert (task.model, task.resolution, task.ratio, task.duration) == (PRO, "1080p", "16:9", 5)
    assert (task.service_tier, task.execution_expires_after, task.generate_audio, task.draft) == (
        "default",
        172_800,
        False,
        False,
    )
    assert isinstance(task.seed, int) and task.seed >= 0  # a seed is drawn and reported


def test_an_audio_model_makes_sound_unless_told_not_to(ark: Ark) -> None:
    assert get(ark, create(ark, PRO_1_5)).generate_audio is True
    assert get(ark, create(ark, PRO_1_5, generate_audio=False)).generate_audio is False


def test_text_flags_after_the_prompt_set_the_task_and_a_top_level_argument_wins(ark: Ark) -> None:
    flags = text(f"{PROMPT} --rs 480p --rt 1:1 --dur 3 --seed 7 --cf true --wm false")
    task = get(ark, create(ark, content=[flags, image()], duration=4))
    assert (task.resolution, task.ratio, task.duration, task.seed) == ("480p", "1:1", 4, 7)


def _catalogue_cases() -> list[tuple[str, ImageMode, int, str]]:
    """(model id, image mode, shortest duration, first resolution) for whatever the catalogue holds."""
    cases: list[tuple[str, ImageMode, int, str]] = []
    for spec in BUILT_IN_MODELS:
        if spec.text_only:
            continue
        names = dict.fromkeys(n for n in (spec.id, getattr(spec, "byteplus_id", None)) if n)
        for name in names:
            for mode in sorted(spec.modes):
                resolution = next(r for r in spec.resolutions_for(mode) if r != "4k")
                cases.append((name, mode, min(spec.durations), resolution))
    return cases


_CONTENT_BY_MODE = {
    ImageMode.FIRST_FRAME: [text(), image()],
    ImageMode.FIRST_AND_LAST: [text(), image(), image("last_frame")],
    ImageMode.REFERENCE_IMAGES: [text(), image("reference_image"), image("reference_image")],
}


@pytest.mark.parametrize(("model", "mode", "duration", "resolution"), _catalogue_cases(), ids=str)
def test_each_mode_of_each_catalogue_model_is_accepted(
    ark: Ark, model: str, mode: ImageMode, duration: int, resolution: str
) -> None:
    task = get(ark, create(ark, model, _CONTENT_BY_MODE[mode], duration=duration, resolution=resolution))
    assert (task.model, task.duration, task.resolution) == (model, duration, resolution)
    assert task.status in ("queued", "running", "succeeded")


# -- get ------------------------------------------------------------------------------------------------------


def test_get_reads_the_task_document_and_it_never_carries_the_callback_url_the_prompt_or_the_inputs(
    ark: Ark, server: SimulatorServer
) -> None:
    task_id = create(
        ark,
        callback_url=HOOK,
        priority=3,
        safety_identifier="user-1",
        return_last_frame=True,
        seed=42,
        service_tier="flex",
        execution_expires_after=3600,
    )
    task = wait(ark, task_id, "succeeded")
    assert task.content.video_url.startswith(server.base_url) and task.content.last_frame_url
    assert task.usage.completion_tokens == task.usage.total_tokens > 0
    assert (task.seed, task.priority, task.safety_identifier, task.framespersecond) == (42, 3, "user-1", 24)
    assert (task.service_tier, task.execution_expires_after) == ("flex", 3600)
    assert isinstance(task.created_at, int) and task.updated_at >= task.created_at
    shown = str(task.model_dump())
    assert "callback_url" not in shown and "secret-token" not in shown
    assert PROMPT not in shown and "base64" not in shown
    listed = str(ark.content_generation.tasks.list(task_ids=[task_id]).model_dump())
    assert "callback_url" not in listed and PROMPT not in listed


def test_a_task_unknown_to_the_platform_is_not_found(ark: Ark) -> None:
    refusal(lambda: get(ark, "cgt-20260101000000-nopes"), ArkNotFoundError)


# -- list -----------------------------------------------------------------------------------------------------


def test_list_filters_by_status_model_task_ids_and_tier_and_pages_newest_first(
    ark: Ark, server: SimulatorServer
) -> None:
    server.knobs.queue_seconds = 600.0  # every task stays queued
    ids = [create(ark), create(ark), create(ark, service_tier="flex"), create(ark, LITE)]
    tasks = ark.content_generation.tasks
    assert tasks.list().total == 4
    assert tasks.list(model=PRO).total == 3
    assert {item.id for item in tasks.list(task_ids=ids[:2]).items} == set(ids[:2])
    assert [item.id for item in tasks.list(service_tier="flex").items] == [ids[2]]
    assert tasks.list(status="queued").total == 4 and tasks.list(status="running").total == 0
    page_two = tasks.list(page_num=2, page_size=3)
    assert page_two.total == 4 and [item.id for item in page_two.items] == [ids[0]]
    assert tasks.list(page_num=500, page_size=500).items == []


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"page_num": 501}, "page_num"),
        ({"page_size": 501}, "page_size"),
        ({"status": "expired"}, "filter.status"),
        ({"status": "done"}, "filter.status"),
        ({"service_tier": "cheap"}, "filter.service_tier"),
    ],
)
def test_list_refuses_pages_beyond_500_and_statuses_it_does_not_filter_by(
    ark: Ark, arguments: dict[str, Any], param: str
) -> None:
    error = refusal(lambda: ark.content_generation.tasks.list(**arguments), ArkBadRequestError)
    assert (error.code, error.param) == ("InvalidParameter", param)


# -- delete ---------------------------------------------------------------------------------------------------


def test_delete_cancels_a_queued_task_and_a_cancelled_task_cannot_be_deleted(ark: Ark, server: SimulatorServer) -> None:
    server.knobs.queue_seconds = 600.0
    task_id = create(ark)
    ark.content_generation.tasks.delete(task_id)
    assert get(ark, task_id).status == "cancelled"
    error = refusal(lambda: ark.content_generation.tasks.delete(task_id), ArkBadRequestError)
    assert error.code == "TaskNotCancellable" and task_id in error.message
    assert get(ark, task_id).status == "cancelled"  # its record stays


def test_delete_refuses_a_running_task(ark: Ark, server: SimulatorServer) -> None:
    server.knobs.never_finish = True
    task_id = create(ark)
    wait(ark, task_id, "running")
    error = refusal(lambda: ark.content_generation.tasks.delete(task_id), ArkBadRequestError)
    assert error.code == "TaskNotCancellable"
    assert get(ark, task_id).status == "running"


@pytest.mark.parametrize("status", ["succeeded", "failed", "expired"])
def test_delete_removes_the_record_of_a_finished_task(ark: Ark, server: SimulatorServer, status: str) -> None:
    if status == "failed":
        server.knobs.fail_next = 1
    if status == "expired":
        server.knobs.queue_seconds = 600.0
        server.knobs.execution_expiry_scale = 0.0001  # the 3600 s minimum passes in 0.36 s
    task_id = create(ark, execution_expires_after=3600)
    wait(ark, task_id, status)
    ark.content_generation.tasks.delete(task_id)
    refusal(lambda: get(ark, task_id), ArkNotFoundError)
    assert server.counters.deleted == 1


# -- errors as the SDK reads them -----------------------------------------------------------------------------


def test_an_unknown_model_is_invalid_endpoint_or_model_not_found(ark: Ark) -> None:
    error = refusal(lambda: create(ark, "doubao-seedance-9-ultra"), ArkNotFoundError)
    assert (error.code, error.param, error.type) == ("InvalidEndpointOrModel.NotFound", "model", "NotFound")
    # BytePlus spells 2.x ids dreamina-seedance-...: the bare spelling is no model at all.
    assert refusal(lambda: create(ark, "seedance-2-0-260128"), ArkNotFoundError).code == (
        "InvalidEndpointOrModel.NotFound"
    )


def test_a_model_that_is_not_activated_is_model_not_open(ark: Ark, server: SimulatorServer) -> None:
    server.knobs.models_not_open = frozenset({PRO})
    error = refusal(lambda: create(ark), ArkNotFoundError)
    assert (error.code, error.param) == ("ModelNotOpen", "model")


def test_an_invalid_argument_is_invalid_parameter_naming_it(ark: Ark, server: SimulatorServer) -> None:
    error = refusal(lambda: create(ark, resolution="4k"), ArkBadRequestError)
    assert (error.code, error.param, error.type) == ("InvalidParameter", "resolution", "BadRequest")
    assert "`resolution`" in error.message
    assert server.counters.tasks_created == 0


@pytest.mark.parametrize(
    ("knob", "code"),
    [
        ("input_text_sensitive_next", "InputTextSensitiveContentDetected"),
        ("input_image_sensitive_next", "InputImageSensitiveContentDetected"),
        ("input_image_privacy_next", "InputImageSensitiveContentDetected.PrivacyInformation"),
    ],
)
def test_input_moderation_refuses_the_create_with_its_code(
    ark: Ark, server: SimulatorServer, knob: str, code: str
) -> None:
    setattr(server.knobs, knob, 1)
    assert refusal(lambda: create(ark), ArkBadRequestError).code == code
    assert server.counters.tasks_created == 0
    create(ark)  # one refusal per knob count


@pytest.mark.parametrize(
    ("knob", "code"),
    [
        ("fail_next", "OutputVideoSensitiveContentDetected"),
        ("output_audio_sensitive_next", "OutputAudioSensitiveContentDetected"),
    ],
)
def test_output_moderation_fails_the_task_with_its_code_and_bills_nothing(
    ark: Ark, server: SimulatorServer, knob: str, code: str
) -> None:
    setattr(server.knobs, knob, 1)
    task = wait(ark, create(ark, PRO_1_5), "failed")
    assert task.error.code == code and task.error.message
    assert task.usage.completion_tokens == 0


def test_limits_faults_and_keys_reach_the_sdk_as_its_own_errors(ark: Ark, server: SimulatorServer) -> None:
    server.knobs.rate_limit_next = 1
    assert refusal(lambda: create(ark), ArkRateLimitError).code == "ModelAccountRpmRateLimitExceeded"
    server.knobs.server_errors_next = 1
    assert refusal(lambda: create(ark), ArkInternalServerError).code == "InternalServiceError"
    wrong = Ark(base_url=server.ark_base_url, api_key="not-the-key", max_retries=0)
    assert refusal(lambda: create(wrong), ArkAuthenticationError).code == "AuthenticationError"
    assert server.counters.tasks_created == 0


# -- the content items and arguments of the newer models -------------------------------------------------------


def test_seedance_2_takes_reference_videos_and_audio_with_reference_images(ark: Ark, server: SimulatorServer) -> None:
    content = [text(), image("reference_image"), video(), video(CLIP + "?2"), audio()]
    task = get(ark, create(ark, V2, content))
    assert task.generate_audio is True
    assert server.tasks()[-1].request.reference_media == (CLIP, CLIP + "?2", SOUND)


@pytest.mark.parametrize(
    ("model", "content"),
    [
        (V2, [text(), video(), audio(), audio(), audio(), audio()]),  # at most 3 audio clips
        (V2, [text(), image("reference_image"), video(), video(), video(), video()]),  # at most 3 videos
        (V2, [text(), audio()]),  # audio never alone
        (V2, [text(), image(), video()]),  # a first frame does not mix with references
        (LITE, [text(), image("reference_image"), video()]),  # 1.0 takes no reference video
        (PRO_1_5, [text(), image(), audio()]),
        (V2, [text(), {"type": "video_url", "video_url": {"url": CLIP}, "role": "reference_image"}]),
    ],
)
def test_content_a_model_cannot_take_is_refused_naming_the_content(
    ark: Ark, model: str, content: list[dict[str, Any]]
) -> None:
    error = refusal(lambda: create(ark, model, content), ArkBadRequestError)
    assert error.code == "InvalidParameter" and error.param.startswith("content")


def test_a_draft_is_rendered_at_480p_then_its_draft_task_is_rendered_in_full(ark: Ark, server: SimulatorServer) -> None:
    draft = wait(ark, create(ark, PRO_1_5, draft=True), "succeeded")
    assert (draft.draft, draft.resolution) == (True, "480p")
    final_id = create(ark, PRO_1_5, [{"type": "draft_task", "draft_task": {"id": draft.id}}], resolution="720p")
    final = get(ark, final_id)
    assert (final.draft, final.draft_task_id, final.resolution) == (False, draft.id, "720p")
    assert server.task(final_id).request.images == server.task(draft.id).request.images


def test_a_draft_task_item_must_name_a_succeeded_draft_of_the_same_model(ark: Ark, server: SimulatorServer) -> None:
    not_a_draft = create(ark, PRO_1_5)
    item = [{"type": "draft_task", "draft_task": {"id": not_a_draft}}]
    assert refusal(lambda: create(ark, PRO_1_5, item), ArkBadRequestError).param == "content.draft_task.id"
    server.knobs.queue_seconds = 600.0
    pending = [{"type": "draft_task", "draft_task": {"id": create(ark, PRO_1_5, draft=True)}}]
    assert refusal(lambda: create(ark, PRO_1_5, pending), ArkBadRequestError).param == "content.draft_task.id"
    assert refusal(lambda: create(ark, PRO, draft=True), ArkBadRequestError).param == "draft"  # 1.0 has no drafts


def test_duration_minus_one_lets_a_model_that_offers_it_choose(ark: Ark) -> None:
    assert get(ark, create(ark, V2, duration=-1)).duration in range(4, 16)
    assert refusal(lambda: create(ark, PRO, duration=-1), ArkBadRequestError).param == "duration"


def test_omni_reference_task_type_is_a_seedance_2_5_argument(ark: Ark) -> None:
    create(ark, V2_5, [text(), image("reference_image"), video()], omni_reference_task_type="edit")


@pytest.mark.parametrize(("model", "task_type"), [(V2_5, "remix"), (V2, "edit")])
def test_an_omni_reference_task_type_the_model_lacks_is_refused(ark: Ark, model: str, task_type: str) -> None:
    error = refusal(lambda: create(ark, model, omni_reference_task_type=task_type), ArkBadRequestError)
    assert error.param == "omni_reference_task_type"


@pytest.mark.parametrize(
    ("model", "arguments", "param"),
    [
        (V2, {"service_tier": "flex"}, "service_tier"),
        (V2, {"camera_fixed": True}, "camera_fixed"),
        (V2, {"frames": 29}, "frames"),
        (PRO_1_5, {"frames": 97}, "frames"),
        (LITE, {"content": [text(), image("reference_image")], "camera_fixed": True}, "camera_fixed"),
        ("doubao-seedance-2-0-fast-260128", {"resolution": "1080p"}, "resolution"),
        ("dreamina-seedance-2-5-flash-261115", {"draft": True}, "draft"),
    ],
)
def test_a_setting_the_model_does_not_offer_is_refused_naming_it(
    ark: Ark, model: str, arguments: dict[str, Any], param: str
) -> None:
    assert refusal(lambda: create(ark, model, **arguments), ArkBadRequestError).param == param


def test_seedance_2_takes_camera_fixed_false_and_the_default_tier(ark: Ark) -> None:
    # Only asking for what the model lacks is refused (the docs do not say whether false is).
    task = get(ark, create(ark, V2, camera_fixed=False, service_tier="default"))
    assert task.service_tier == "default"


# -- the property behind all of it: null is "not given" ----------------------------------------------------------

_VALID_ARGUMENTS = {
    "resolution": st.sampled_from(["480p", "720p", "1080p"]),
    "ratio": st.sampled_from(["16:9", "4:3", "1:1", "3:4", "9:16", "21:9"]),
    "duration": st.integers(2, 12),
    "seed": st.integers(-1, 2**32 - 1),
    "camera_fixed": st.booleans(),
    "watermark": st.booleans(),
    "return_last_frame": st.booleans(),
    "service_tier": st.sampled_from(["default", "flex"]),
    "execution_expires_after": st.integers(3600, 259_200),
    "priority": st.integers(0, 10),
}
_DEFAULTS = {"resolution": "1080p", "duration": 5, "service_tier": "default", "execution_expires_after": 172_800}


# Each example is two HTTP calls and a task: a quarter of the profile's examples (make fuzz runs many more).
@settings(
    max_examples=max(25, settings().max_examples // 4), suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.fixed_dictionaries({name: st.none() | values for name, values in _VALID_ARGUMENTS.items()}))
def test_any_mix_of_unset_and_valid_arguments_creates_a_task_that_reports_each_value_or_its_default(
    ark: Ark, arguments: dict[str, Any]
) -> None:
    task = get(ark, create(ark, **arguments))
    for name in ("resolution", "duration", "service_tier", "execution_expires_after", "priority"):
        shown = getattr(task, name, None)
        assert shown == (arguments[name] if arguments[name] is not None else _DEFAULTS.get(name)), name
    if arguments["seed"] not in (None, -1):
        assert task.seed == arguments["seed"]
    if arguments["ratio"] is not None:
        assert task.ratio == arguments["ratio"]
