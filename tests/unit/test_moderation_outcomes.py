"""Moderation failures end with a reason a person can act on; only an output flag is resubmitted, once, when allowed."""

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.adapters.job_events import event_detail
from seedance_pipeline.errors import MODERATION, ProviderRejected, moderation_rule
from seedance_pipeline.logic.moderation_outcome import resubmission_seed
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/cat.jpg"
SEEDANCE_2 = "doubao-seedance-2-0-260128"

# (provider code, job error code, moderation.what, words the reason must hold, a second try can help)
KINDS = [
    ("InputTextSensitiveContentDetected", "MODERATION_PROMPT", "prompt", "reword it", False),
    ("InputImageSensitiveContentDetected", "MODERATION_IMAGE", "image", "use another image", False),
    (
        "InputImageSensitiveContentDetected.PrivacyInformation",
        "MODERATION_REAL_PERSON",
        "real_person",
        "authorised asset",
        False,
    ),
    ("OutputVideoSensitiveContentDetected", "MODERATION_OUTPUT_VIDEO", "output_video", "not billed", True),
    ("OutputAudioSensitiveContentDetected", "MODERATION_OUTPUT_AUDIO", "output_audio", "without audio", True),
]


def start(metadata=None, **settings):
    runtime, store, storage, provider = make_runtime(**settings)
    storage.add(BUCKET, KEY, image_bytes(), metadata or {})
    job_id = accept_upload(Upload(bucket=BUCKET, key=KEY, sequencer="01", etag="e1"), runtime, owner="s").job_id
    return runtime, store, storage, provider, present(job_id)


def poll_until_terminal(runtime, store, *, limit=200):
    for _ in range(limit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(j.status.is_terminal for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("jobs never reached a terminal status")


@pytest.mark.parametrize(("provider_code", "error_code", "what", "advice", "_"), KINDS, ids=[k[2] for k in KINDS])
def test_each_moderation_kind_ends_with_what_was_flagged_and_what_to_do(provider_code, error_code, what, advice, _):
    runtime, store, storage, provider, job_id = start()
    provider.outcome = {
        "state": "FAILED",
        "failure_code": provider_code,
        "failure_reason": "The request failed because it may contain sensitive information.",
    }
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED
    error = present(job.error)
    assert error.code == error_code
    assert f"moderation flagged the {what.replace('_', ' ')} ({provider_code})" in error.message
    assert advice in error.message
    assert "may contain sensitive information" in error.message  # the provider's own words are kept
    assert present(job.moderation).model_dump() == {"what": what, "code": provider_code}
    published = runtime.events.published[-1]
    assert event_detail(published)["moderation"] == {"what": what, "code": provider_code}


def test_an_ark_style_reason_names_its_code_in_the_text_and_is_read_from_there():
    runtime, store, storage, provider, _ = start()
    provider.outcome = {"state": "FAILED", "failure_reason": "InputTextSensitiveContentDetected: sensitive prompt"}
    poll_until_terminal(runtime, store)
    [job] = store.jobs()
    assert present(job.error).code == "MODERATION_PROMPT"


def test_an_input_flagged_at_the_post_fails_with_its_reason_and_nothing_is_resent():
    runtime, store, storage, provider = make_runtime(resubmit_on_output_moderation=True)
    provider.submit_error = ProviderRejected(
        "HTTP 400 InputImageSensitiveContentDetected.PrivacyInformation: real person",
        code="InputImageSensitiveContentDetected.PrivacyInformation",
    )
    storage.add(BUCKET, KEY, image_bytes())
    outcome = accept_upload(Upload(bucket=BUCKET, key=KEY, sequencer="01", etag="e1"), runtime, owner="s")
    job = store.job(present(outcome.job_id))
    assert job.status is JobStatus.FAILED
    assert present(job.error).code == "MODERATION_REAL_PERSON"
    assert "authorised asset" in present(job.error).message
    assert job.resubmissions == 0


@pytest.mark.parametrize(("provider_code", "error_code", "what", "advice", "helps"), KINDS, ids=[k[2] for k in KINDS])
def test_resubmission_happens_once_and_only_for_a_flagged_output(provider_code, error_code, what, advice, helps):
    runtime, store, storage, provider, job_id = start(
        {"model": SEEDANCE_2, "generate-audio": "true", "duration": "5"}, resubmit_on_output_moderation=True
    )
    # Every task is flagged: a job may be resubmitted at most once, then ends FAILED with the reason.
    provider.outcome = {"state": "FAILED", "failure_code": provider_code, "failure_reason": "flagged"}
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED
    assert present(job.error).code == error_code
    assert len(provider.submissions) == (2 if helps else 1)
    assert job.resubmissions == (1 if helps else 0)
    if helps:
        first, second = provider.submissions
        if what == "output_audio":
            assert first["generate_audio"] is True and second["generate_audio"] is False
        else:
            assert second["seed"] == resubmission_seed(job_id, 1) and "seed" not in first
        assert any("ResubmitOnOutputModeration sent one new task" in note for note in job.notes)


def test_a_resubmitted_job_that_succeeds_says_in_its_sidecar_what_was_flagged():
    runtime, store, storage, provider, job_id = start(resubmit_on_output_moderation=True)
    provider.outcome_for["cgt-00001"] = {
        "state": "FAILED",
        "failure_code": "OutputVideoSensitiveContentDetected",
        "failure_reason": "flagged",
    }
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.task_id == "cgt-00002"
    sidecar = json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.json")])
    assert sidecar["moderation"] == {"what": "output_video", "code": "OutputVideoSensitiveContentDetected"}
    assert sidecar["resubmissions"] == 1
    assert store.slots == set()


def test_with_resubmission_off_a_flagged_output_is_not_resent():
    runtime, store, storage, provider, job_id = start()
    provider.outcome = {"state": "FAILED", "failure_code": "OutputVideoSensitiveContentDetected", "failure_reason": "x"}
    poll_until_terminal(runtime, store)
    assert len(provider.submissions) == 1
    assert present(store.job(job_id).error).code == "MODERATION_OUTPUT_VIDEO"


def test_a_resubmission_is_taken_from_the_daily_budget_like_any_submission():
    runtime, store, storage, provider, job_id = start(resubmit_on_output_moderation=True, daily_token_budget=10**9)
    estimate = present(store.job(job_id).estimated_tokens)
    provider.outcome_for["cgt-00001"] = {"state": "FAILED", "failure_code": "OutputVideoSensitiveContentDetected"}
    poll_until_terminal(runtime, store)
    assert store.job(job_id).status is JobStatus.SUCCEEDED
    assert sum(store.committed.values()) == 2 * estimate


def test_a_failure_that_is_not_moderation_keeps_the_providers_reason_alone():
    runtime, store, storage, provider, job_id = start(resubmit_on_output_moderation=True)
    provider.outcome = {"state": "FAILED", "failure_code": "InternalServiceError", "failure_reason": "boom"}
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert present(job.error).code == "PROVIDER_FAILURE" and present(job.error).message == "boom"
    assert job.moderation is None and len(provider.submissions) == 1


INPUT_CODES = [code for code, rule in MODERATION if rule.resubmit is None]
OUTPUT_CODES = [code for code, rule in MODERATION if rule.resubmit is not None]


@given(
    st.sampled_from(INPUT_CODES),
    st.lists(st.sampled_from(OUTPUT_CODES), max_size=2),
    st.sampled_from([" ", ": ", "; ", ", ", " | ", "\n", ". "]),
)
def test_a_failure_that_names_any_flagged_input_is_never_one_a_second_try_may_clear(input_code, outputs, filler):
    text = filler.join([*outputs, input_code, *outputs])
    found = moderation_rule(None, text)
    assert found is not None
    code, rule = found
    assert rule.resubmit is None
    assert code == input_code or code.startswith("InputImage")  # the privacy code is the image code, refined


@given(st.text(max_size=200))
def test_text_without_a_moderation_code_is_never_read_as_moderation(text):
    words = set(re.findall(r"[A-Za-z.]+", text))
    if not any(code in word for word in words for code, _ in MODERATION):
        assert moderation_rule(None, text) is None


def test_a_job_past_its_age_limit_is_not_resubmitted_and_the_reason_says_why():
    runtime, store, storage, provider, job_id = start(resubmit_on_output_moderation=True, max_job_age_minutes=1)
    provider.ready_after = 65  # the flag comes back after 65 s: a resubmitted WAITING job would time out unsent
    provider.outcome = {"state": "FAILED", "failure_code": "OutputVideoSensitiveContentDetected"}
    runtime.clock.advance(65)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED and present(job.error).code == "MODERATION_OUTPUT_VIDEO"
    assert "not resubmitted: the job is past MaxJobAgeMinutes" in present(job.error).message
    assert len(provider.submissions) == 1
