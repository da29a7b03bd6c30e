"""Jobs on an Ark stack: a lost submission answer is looked up in the task list before the job is declared
uncertain, and a queued task is cancelled when its job times out or is superseded (FakeProvider records both)."""

from __future__ import annotations

from typing import Any

from seedance_pipeline.errors import ProviderRejected, ProviderUnavailable, SubmissionUncertain
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import FakeProvider, FakeStorage, FakeStore, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
LOST = SubmissionUncertain("no answer from the provider within the read timeout; the provider may have created it")


def ark(**settings: Any) -> tuple[Any, FakeStore, FakeStorage, FakeProvider]:
    runtime, store, storage, provider = make_runtime(provider_api="ark", api_base_url="", **settings)
    provider.can_cancel = True
    return runtime, store, storage, provider


def submitted(runtime: Any, storage: FakeStorage, key: str = "uploads/cat.jpg", sequencer: str = "01") -> str:
    storage.add(BUCKET, key, image_bytes(), {})
    upload = Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1")
    return present(accept_upload(upload, runtime, owner="s").job_id)


def poll(runtime: Any, times: int = 1, step: float = 30.0) -> None:
    for _ in range(times):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(step)


# --- look-up before uncertain -------------------------------------------------------------------------------------


def test_a_lost_answer_whose_task_is_listed_once_continues_as_submitted_with_that_task_and_a_note():
    runtime, store, storage, provider = ark()
    provider.submit_error, provider.listed_task_id = LOST, "cgt-found"
    job_id = submitted(runtime, storage)
    job = store.job(job_id)
    assert job.status is JobStatus.SUBMITTED and job.task_id == "cgt-found"
    assert any("task cgt-found was found in the provider's task list" in note for note in job.notes)
    body, since, until = provider.lookups[0]
    assert body["content"][0]["type"] == "text" and body["model"] == "doubao-seedance-1-0-pro-250528"
    assert since <= present(job.submission_started_at) <= until
    provider.submit_error = None
    poll(runtime, times=10)
    assert store.job(job_id).status is JobStatus.SUCCEEDED  # delivered from the adopted task


def test_a_lost_answer_the_list_does_not_show_exactly_once_stays_uncertain():
    # The fake stands for a list with no match or with two (test_ark_dialect covers both over HTTP): None.
    runtime, store, storage, provider = ark()
    provider.submit_error = LOST
    job = store.job(submitted(runtime, storage))
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"
    assert job.task_id is None and len(provider.lookups) == 1
    assert "Not resent, to avoid paying twice" in present(job.error).message


def test_a_look_up_that_fails_leaves_the_submission_uncertain(monkeypatch):
    runtime, store, storage, provider = ark()
    provider.submit_error = LOST

    def broken(*args: Any, **kwargs: Any) -> str | None:
        raise ProviderUnavailable("the task list could not be read")

    monkeypatch.setattr(provider, "find_task", broken)
    job = store.job(submitted(runtime, storage))
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"


def test_a_clear_refusal_is_not_looked_up():
    runtime, store, storage, provider = ark()
    provider.submit_error = ProviderRejected("HTTP 400 InvalidParameter: ratio", code="InvalidParameter")
    job = store.job(submitted(runtime, storage))
    assert job.status is JobStatus.FAILED and provider.lookups == []


# --- cancel --------------------------------------------------------------------------------------------------------


def test_a_queued_task_is_cancelled_when_its_job_times_out_and_the_job_says_so():
    runtime, store, storage, provider = ark(max_job_age_minutes=10)
    provider.ready_after, provider.unready_state = 10**9, "PENDING"
    job_id = submitted(runtime, storage)
    poll(runtime, times=40)
    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT
    assert provider.cancels == [job.task_id]
    assert f"the provider task {job.task_id} was cancelled" in job.notes


def test_a_running_task_is_not_cancelled_when_its_job_times_out():
    runtime, store, storage, provider = ark(max_job_age_minutes=10)
    provider.ready_after = 10**9  # RUNNING: the platform cannot cancel it, so it is not asked
    job_id = submitted(runtime, storage)
    poll(runtime, times=40)
    assert store.job(job_id).status is JobStatus.TIMED_OUT and provider.cancels == []


def test_a_queued_task_of_a_superseded_job_is_cancelled_and_the_newer_job_goes_on():
    runtime, store, storage, provider = ark()
    provider.ready_after, provider.unready_state = 120, "PENDING"
    older = submitted(runtime, storage, sequencer="00A1")
    runtime.clock.advance(10)
    newer = submitted(runtime, storage, sequencer="00A2")
    poll(runtime, times=20)
    old_job, new_job = store.job(older), store.job(newer)
    assert old_job.status is JobStatus.FAILED and present(old_job.error).code == "SUPERSEDED"
    assert provider.cancels == [old_job.task_id]
    assert f"the provider task {old_job.task_id} was cancelled" in old_job.notes
    assert new_job.status is JobStatus.SUCCEEDED and new_job.task_id not in provider.cancels


def test_a_failed_cancel_is_logged_and_the_job_still_ends():
    runtime, store, storage, provider = ark(max_job_age_minutes=10)
    provider.ready_after, provider.unready_state = 10**9, "PENDING"
    provider.cancel_error = ProviderRejected("HTTP 409 InvalidAction: the task is running", code="InvalidAction")
    job_id = submitted(runtime, storage)
    poll(runtime, times=40)
    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT and not any("cancelled" in note for note in job.notes)
    assert store.slots == set()
