"""The model catalogue: every model is checked for each mode it allows and refuses, from the catalogue data itself,
plus a few facts stated outright so a wrong row cannot pass by agreeing with itself."""

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.model_catalogue import (
    BUILT_IN_CATALOGUE,
    BUILT_IN_MODELS,
    ImageMode,
    ModelSpec,
    check_request,
    describe_durations,
)
from seedance_pipeline.rules.video_request import resolve_request
from seedance_pipeline.settings import Settings
from tests.support.expect import present
from tests.support.fakes import GATEWAY_URL, make_runtime
from tests.support.images import image_bytes

PRO = "doubao-seedance-1-0-pro-250528"
PRO_FAST = "doubao-seedance-1-0-pro-fast-251015"
LITE = "doubao-seedance-1-0-lite-i2v-250428"
PRO_1_5 = "doubao-seedance-1-5-pro-251215"
SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_2_FAST = "doubao-seedance-2-0-fast-260128"
LITE_T2V = "doubao-seedance-1-0-lite-t2v-250428"

IMAGE_MODELS = [spec for spec in BUILT_IN_MODELS if not spec.text_only]
PAIRS = [(spec, mode) for spec in IMAGE_MODELS for mode in ImageMode]


def image_count(spec: ModelSpec, mode: ImageMode) -> int:
    return {ImageMode.FIRST_FRAME: 1, ImageMode.FIRST_AND_LAST: 2}.get(mode, max(spec.max_reference_images, 1))


def check(spec_or_id: ModelSpec | str, mode: ImageMode = ImageMode.FIRST_FRAME, **overrides):
    spec = BUILT_IN_CATALOGUE.get(spec_or_id) if isinstance(spec_or_id, str) else spec_or_id
    assert spec is not None
    fields: dict[str, Any] = {
        "mode": mode,
        "image_count": image_count(spec, mode),
        "duration": min(spec.durations_for("unified")),
        "resolution": spec.resolutions_for(mode)[0],
        "generate_audio": False,
        "catalogue": BUILT_IN_CATALOGUE,
    }
    fields.update(overrides)
    return check_request(spec.id, **fields)


@pytest.mark.parametrize(("spec", "mode"), PAIRS, ids=[f"{s.id}-{m.value}" for s, m in PAIRS])
def test_each_model_takes_exactly_the_image_modes_the_catalogue_gives_it(spec, mode):
    if mode in spec.modes:
        assert check(spec, mode) is spec
        return
    with pytest.raises(InvalidInput) as caught:
        check(spec, mode)
    assert caught.value.message.startswith(f"model {spec.id} takes ")
    assert {"first_frame": "a first frame", "first_and_last_frame": "a first and a last frame"}.get(
        mode.value, "reference images"
    ) in caught.value.message


@pytest.mark.parametrize("spec", IMAGE_MODELS, ids=[s.id for s in IMAGE_MODELS])
def test_each_model_offers_its_native_durations_natively_and_only_5_or_10_through_the_gateway(spec):
    native = spec.durations_for("ark")
    for seconds in native:
        check(spec, duration=seconds, provider_api="ark")
    for seconds in (min(spec.durations) - 1, max(spec.durations) + 1):
        with pytest.raises(InvalidInput, match=re.escape(f"offers durations {describe_durations(native)} s, not")):
            check(spec, duration=seconds, provider_api="ark")
    assert spec.durations_for("unified") == spec.durations & {5, 10} == {5, 10}
    with pytest.raises(InvalidInput, match="offers durations 5 or 10 s with the unified gateway, not 7"):
        check(spec, duration=7)


@pytest.mark.parametrize("spec", IMAGE_MODELS, ids=[s.id for s in IMAGE_MODELS])
def test_audio_is_asked_for_only_where_the_model_has_it(spec):
    if spec.audio:
        check(spec, generate_audio=True)
    else:
        with pytest.raises(InvalidInput, match=f"model {spec.id} has no audio"):
            check(spec, generate_audio=True)


REFERENCE_MODELS = [spec for spec in IMAGE_MODELS if ImageMode.REFERENCE_IMAGES in spec.modes]


@pytest.mark.parametrize("spec", REFERENCE_MODELS, ids=[s.id for s in REFERENCE_MODELS])
def test_each_model_refuses_one_reference_image_more_than_it_takes(spec):
    check(spec, ImageMode.REFERENCE_IMAGES, image_count=1)
    with pytest.raises(InvalidInput, match=f"takes 1-{spec.max_reference_images} reference images, not"):
        check(spec, ImageMode.REFERENCE_IMAGES, image_count=spec.max_reference_images + 1)


@pytest.mark.parametrize("spec", BUILT_IN_MODELS, ids=[s.id for s in BUILT_IN_MODELS])
def test_each_platforms_spelling_names_the_same_model(spec):
    assert spec.volcengine_id or spec.byteplus_id
    for name in (spec.volcengine_id, spec.byteplus_id):
        if name:
            assert BUILT_IN_CATALOGUE.get(name) is spec


def test_known_facts_about_the_models():
    with pytest.raises(InvalidInput) as caught:
        check(PRO_FAST, ImageMode.FIRST_AND_LAST)
    assert caught.value.message.startswith(
        f"model {PRO_FAST} takes a first frame only, not a first and a last frame (models that do: {PRO}, {LITE}"
    )
    with pytest.raises(InvalidInput, match="text-to-video only: wrong for an image-to-video pipeline"):
        check_request(
            LITE_T2V,
            mode=ImageMode.FIRST_FRAME,
            image_count=1,
            duration=5,
            resolution="720p",
            generate_audio=False,
            catalogue=BUILT_IN_CATALOGUE,
        )
    for model in (SEEDANCE_2, SEEDANCE_2_FAST, PRO_1_5):
        check(model, generate_audio=True)
    check(SEEDANCE_2, ImageMode.REFERENCE_IMAGES, image_count=9, duration=15, provider_api="ark")
    with pytest.raises(InvalidInput, match=f"model {LITE} offers 480p, 720p with reference images, not 1080p"):
        check(LITE, ImageMode.REFERENCE_IMAGES, image_count=4, resolution="1080p")
    check(LITE, ImageMode.FIRST_FRAME, resolution="1080p")
    with pytest.raises(InvalidInput, match=r"offers durations 4-12 or -1 \(the model picks\) s, not 3"):
        check(PRO_1_5, duration=3, provider_api="ark")
    with pytest.raises(InvalidInput, match=f"model {PRO} has no audio"):
        check(PRO, generate_audio=True)


def test_an_unknown_model_is_refused_with_the_way_to_allow_it():
    with pytest.raises(InvalidInput) as caught:
        check_request(
            "acme-video-1",
            mode=ImageMode.FIRST_FRAME,
            image_count=1,
            duration=5,
            resolution="720p",
            generate_audio=False,
            catalogue=BUILT_IN_CATALOGUE,
        )
    assert "'acme-video-1'" in caught.value.message
    assert "ExtraModels" in caught.value.message and "EXTRA_MODELS" in caught.value.message
    assert caught.value.code == "INVALID_METADATA"


# --- operator-declared models ------------------------------------------------------------------------------------

ACME = {"id": "acme-video-1", "modes": ["first_frame", "first_and_last_frame"], "durations": "4-10", "audio": True}


def test_an_operator_model_passes_resolve_request_with_what_it_declares():
    settings = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, extra_models=json.dumps([ACME]))
    request = resolve_request(settings, {"model": "acme-video-1", "generate-audio": "true", "duration": "10"})
    assert (request.model, request.generate_audio, request.duration) == ("acme-video-1", True, 10)
    two_frames = resolve_request(settings, {"model": "acme-video-1"}, mode=ImageMode.FIRST_AND_LAST, image_count=2)
    assert two_frames.model == "acme-video-1"
    with pytest.raises(InvalidInput, match="model acme-video-1 takes a first frame or a first and a last frame, not"):
        resolve_request(settings, {"model": "acme-video-1"}, mode=ImageMode.REFERENCE_IMAGES, image_count=1)


def test_an_upload_naming_an_operator_model_is_submitted_with_that_model_id():
    runtime, store, storage, provider = make_runtime(extra_models=json.dumps({"acme-video-1": {"durations": [5]}}))
    storage.add("in-bucket", "uploads/cat.jpg", image_bytes(), {"model": "acme-video-1"})
    outcome = accept_upload(Upload(bucket="in-bucket", key="uploads/cat.jpg", sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "SUBMITTED", outcome.reason
    assert store.job(present(outcome.job_id)).status is JobStatus.SUBMITTED
    [body] = provider.submissions
    assert body["model"] == "acme-video-1" and body["duration"] == 5


def test_the_same_upload_without_the_operator_entry_is_rejected_before_any_call():
    runtime, store, storage, provider = make_runtime()
    storage.add("in-bucket", "uploads/cat.jpg", image_bytes(), {"model": "acme-video-1"})
    outcome = accept_upload(Upload(bucket="in-bucket", key="uploads/cat.jpg", sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "REJECTED" and "ExtraModels" in present(outcome.reason)
    assert provider.submissions == []


def test_an_operator_entry_replaces_the_built_in_row_of_the_same_id():
    settings = Settings(
        jobs_table_name="t",
        api_base_url=GATEWAY_URL,
        extra_models=json.dumps([{"id": PRO_FAST, "modes": ["first_and_last_frame"]}]),
    )
    resolve_request(settings, {"model": PRO_FAST}, mode=ImageMode.FIRST_AND_LAST, image_count=2)
    with pytest.raises(InvalidInput, match="takes a first and a last frame only, not a first frame"):
        resolve_request(settings, {"model": PRO_FAST})


def test_extra_models_are_read_from_the_environment_and_empty_means_none(monkeypatch):
    monkeypatch.setenv("JOBS_TABLE_NAME", "t")
    monkeypatch.setenv("API_BASE_URL", GATEWAY_URL)
    monkeypatch.setenv("EXTRA_MODELS", "")
    assert Settings().extra_models == ()
    monkeypatch.setenv("EXTRA_MODELS", json.dumps([ACME]))
    assert present(Settings().model_catalogue.get("acme-video-1")).durations == frozenset(range(4, 11))


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("[{not json", "EXTRA_MODELS is not valid JSON"),
        ('"acme"', "must be a JSON list of models or an object"),
        ('["acme"]', "EXTRA_MODELS[0] must be a JSON object"),
        ('[{"modes": ["first_frame"]}]', "EXTRA_MODELS[0] (None): 'id': Field required"),
        ('[{"id": "acme", "modez": []}]', "'modez' is not a known field"),
        ('[{"id": "acme", "modes": ["first"]}]', "EXTRA_MODELS[0] ('acme'): 'modes."),
        ('[{"id": "acme", "durations": "five"}]', "'durations'"),
        ('[{"id": "acme", "durations": [0]}]', "from 1 to 600"),
        ('[{"id": "acme", "resolutions": ["8k"]}]', "'resolutions."),
        ('[{"id": "acme", "modes": ["reference_images"]}]', "needs 'max_reference_images' of 1 or more"),
        ('[{"id": "acme", "durations": "2-4"}]', "none of which the unified provider API offers"),
        (f'[{{"id": "{LITE_T2V}"}}]', "text-to-video only and cannot be allowed"),
        ('[{"id": "acme video"}]', "'id'"),
    ],
)
def test_bad_extra_models_fail_settings_at_cold_start_naming_the_entry_and_field(monkeypatch, raw, named):
    monkeypatch.setenv("JOBS_TABLE_NAME", "t")
    monkeypatch.setenv("API_BASE_URL", GATEWAY_URL)
    monkeypatch.setenv("EXTRA_MODELS", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert named in str(caught.value)


# --- defaults from the template ----------------------------------------------------------------------------------


def test_a_default_model_the_catalogue_does_not_know_rejects_each_upload_naming_the_parameter():
    with pytest.raises(InvalidInput, match=r"the Model parameter is 'acme-video-1'.*ExtraModels"):
        resolve_request(Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, model="acme-video-1"), {})


def test_the_template_audio_default_applies_only_to_models_with_audio():
    settings = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, generate_audio=True)
    assert resolve_request(settings, {}).generate_audio is False  # the default model, 1.0 pro, has no audio
    assert resolve_request(settings, {"model": PRO_1_5}).generate_audio is True
    with pytest.raises(InvalidInput, match=f"model {PRO} has no audio"):
        resolve_request(settings, {"generate-audio": "true"})


# --- any declaration ---------------------------------------------------------------------------------------------

declarations = st.builds(
    lambda modes, durations, resolutions, audio, max_refs: {
        "id": "acme-any",
        "modes": sorted(modes),
        "durations": sorted(durations),
        "resolutions": sorted(resolutions),
        "audio": audio,
        "max_reference_images": max_refs,
    },
    st.sets(st.sampled_from([m.value for m in ImageMode]), min_size=1),
    st.sets(st.integers(1, 16), min_size=1).filter(lambda d: d & {5, 10}),
    st.sets(st.sampled_from(["480p", "720p", "1080p"]), min_size=1),
    st.booleans(),
    st.integers(1, 12),
)


@given(declared=declarations, data=st.data(), provider_api=st.sampled_from(["unified", "ark"]))
def test_an_operator_model_is_held_to_exactly_what_it_declares(declared, data, provider_api):
    settings = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, extra_models=json.dumps([declared]))
    spec = settings.model_catalogue.get("acme-any")
    # Mostly what the model declares, sometimes anything: every check must be reached, and each must bite.
    mode = ImageMode(data.draw(st.one_of(st.sampled_from(declared["modes"]), st.sampled_from(list(ImageMode)))))
    expected_count = {ImageMode.FIRST_FRAME: 1, ImageMode.FIRST_AND_LAST: 2}.get(mode)
    fitting_count = st.just(expected_count) if expected_count else st.integers(1, declared["max_reference_images"])
    edges = st.sampled_from([0, 1, 2, 3, declared["max_reference_images"], declared["max_reference_images"] + 1])
    count = data.draw(st.one_of(fitting_count, fitting_count, edges))
    duration = data.draw(st.one_of(st.sampled_from(declared["durations"]), st.integers(0, 17)))
    resolution = data.draw(
        st.one_of(st.sampled_from(declared["resolutions"]), st.sampled_from(["480p", "720p", "1080p"]))
    )
    audio = data.draw(st.booleans())
    gateway = {5, 10} if provider_api == "unified" else set(range(100))
    allowed = (
        mode.value in declared["modes"]
        and (count == expected_count if expected_count else 1 <= count <= declared["max_reference_images"])
        and duration in set(declared["durations"]) & gateway
        and resolution in declared["resolutions"]
        and (declared["audio"] or not audio)
    )
    fields = {"mode": mode, "image_count": count, "duration": duration, "resolution": resolution}

    def ask() -> ModelSpec:
        return check_request(
            "acme-any",
            **fields,
            generate_audio=audio,
            catalogue=settings.model_catalogue,
            provider_api=provider_api,
        )

    if allowed:
        assert ask() is spec
    else:
        with pytest.raises(InvalidInput, match=r"^model acme-any "):
            ask()
