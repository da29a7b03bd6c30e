"""Jobs on an Ark stack: a lost submission answer is looked up in the task list before the job is declared
uncertain, and a queued task is cancelled when its job times out or is superseded (FakeProvider records both)."""

from __future__ import annotations

import json
from typing import Any

from seedance_pipeline.errors import ProviderRejected, ProviderUnavailable, SubmissionUncertain
from seedance_pipeline.logic.moderation_outcome import resubmission_seed
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.lookup_seed import carries_lookup_seed, lookup_seed
from tests.support.expect import present
from tests.support.fakes import FakeProvider, FakeStorage, FakeStore, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
LOST = SubmissionUncertain("no answer from the provider within the read timeout; the provider may have created it")


def ark(**settings: Any) -> tuple[Any, FakeStore, FakeStorage, FakeProvider]:
    runtime, store, storage, provider = make_runtime(provider_api="ark", api_base_url="", **settings)
    provider.can_cancel = provider.can_list = True
    return runtime, store, storage, provider


def submitted(
    runtime: Any,
    storage: FakeStorage,
    key: str = "uploads/cat.jpg",
    sequencer: str = "01",
    metadata: dict[str, str] | None = None,
) -> str:
    storage.add(BUCKET, key, image_bytes(), metadata or {})
    upload = Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1")
    return present(accept_upload(upload, runtime, owner="s").job_id)


def poll(runtime: Any, times: int = 1, step: float = 30.0) -> None:
    for _ in range(times):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(step)


# --- look-up before uncertain -------------------------------------------------------------------------------------


def test_a_lost_answer_whose_task_is_listed_once_continues_as_submitted_with_that_task_and_a_note():
    runtime, store, storage, provider = ark()
    provider.lose_answers_next = 1  # the task is made and billed; its id never arrives
    job_id = submitted(runtime, storage)
    job = store.job(job_id)
    (made,) = provider.tasks
    assert job.status is JobStatus.SUBMITTED and job.task_id == made
    assert any(f"task {made} was found in the provider's task list" in note for note in job.notes)
    body, since, until = provider.lookups[0]
    assert body["content"][0]["type"] == "text" and body["model"] == "doubao-seedance-1-0-pro-250528"
    assert since <= present(job.submission_started_at) <= until
    poll(runtime, times=10)
    assert store.job(job_id).status is JobStatus.SUCCEEDED  # delivered from the adopted task


def test_a_lost_answer_the_list_does_not_show_exactly_once_stays_uncertain():
    # Refused before any task was made: the list shows nothing (test_ark_dialect covers two matches over HTTP).
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


# --- a lost answer adopts only a task that is provably this job's ---------------------------------------------------


def two_identical_uploads_the_second_answer_lost(
    runtime: Any, provider: FakeProvider, *, task_made: bool = False, seed: str | None = None
) -> tuple[str, str]:
    """Upload B is sent and answered; seconds later upload A (same settings, another key) is sent and its answer
    lost: a 502 from a gateway in front of the platform (no task made), or a read timeout after the task was made
    (`task_made`). Returns the job ids (A, B)."""
    storage, metadata = runtime.storage, ({"seed": seed} if seed is not None else None)
    job_b = submitted(runtime, storage, key="uploads/b.jpg", sequencer="0B", metadata=metadata)
    runtime.clock.advance(5)
    if task_made:
        provider.lose_answers_next = 1
    else:
        provider.submit_error = SubmissionUncertain("HTTP 502 from the gateway: the provider may have created it")
    job_a = submitted(runtime, storage, key="uploads/a.jpg", sequencer="0A", metadata=metadata)
    provider.submit_error = None
    return job_a, job_b


def test_a_lost_answer_never_adopts_another_uploads_task():
    # The sequence, callbacks on: the body carries callback_url, which the list never shows.
    runtime, store, storage, provider = ark(
        callback_url="https://cb.example.com/callback", callback_signing_secret_id="cb-key"
    )
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider)
    a, b = store.job(job_a), store.job(job_b)
    assert len(provider.tasks) == 1 and b.task_id in provider.tasks  # A's POST made nothing
    assert a.task_id is None, f"A adopted {a.task_id}, B's task"
    assert a.status is JobStatus.FAILED and present(a.error).code == "SUBMISSION_UNCERTAIN"


def test_a_lost_answer_with_callbacks_off_and_ratio_adaptive_never_adopts_another_uploads_task():
    # The defaults: no callback URL, ratio adaptive (the task reports the ratio chosen), no seed set by either.
    runtime, store, storage, provider = ark()
    assert runtime.settings.ratio == "adaptive" and not runtime.settings.sends_callbacks
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider)
    assert store.job(job_a).task_id is None and store.job(job_b).task_id in provider.tasks
    assert present(store.job(job_a).error).code == "SUBMISSION_UNCERTAIN"


def test_a_lost_answer_whose_task_was_made_finds_its_own_task_beside_an_identical_uploads():
    runtime, store, storage, provider = ark()
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider, task_made=True)
    task_b, task_a = provider.tasks  # in the order made
    assert store.job(job_b).task_id == task_b
    assert store.job(job_a).task_id == task_a  # told apart by the seed derived from its job id
    assert provider.submissions[0]["seed"] != provider.submissions[1]["seed"]
    poll(runtime, times=10)
    a, b = store.job(job_a), store.job(job_b)
    assert a.status is b.status is JobStatus.SUCCEEDED
    for job, sent in ((a, provider.submissions[1]), (b, provider.submissions[0])):
        outputs = present(job.outputs)
        sidecar = json.loads(storage.uploads[(outputs.bucket, outputs.sidecar_key)])
        assert sidecar["task_id"] == job.task_id  # each sidecar vouches for the job's own task
        assert sidecar["request"]["seed"] == sent["seed"]  # and names the seed that made it


def test_the_seed_sent_is_recorded_on_the_job_so_the_video_can_be_made_again():
    runtime, store, storage, provider = ark()
    job = store.job(submitted(runtime, storage))
    assert present(job.request).seed == provider.submissions[0]["seed"]
    assert isinstance(provider.submissions[0]["seed"], int) and 0 <= provider.submissions[0]["seed"] < 2**31


def test_a_seed_the_upload_sets_is_sent_as_it_is():
    runtime, store, storage, provider = ark()
    job = store.job(submitted(runtime, storage, metadata={"seed": "4000000000"}))
    assert provider.submissions[0]["seed"] == 4_000_000_000 == present(job.request).seed


def test_the_gateway_gets_no_seed_the_upload_did_not_set():
    runtime, store, storage, provider = make_runtime()
    store.job(submitted(runtime, storage))
    assert "seed" not in provider.submissions[0]


def test_a_lost_answer_with_seed_minus_one_is_not_looked_up_and_stays_uncertain():
    # -1 asks the platform to draw a seed, and the task reports the one it drew: nothing in the list is provably
    # ours, so the list is not even read.
    runtime, store, storage, provider = ark()
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider, seed="-1")
    job = store.job(job_a)
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"
    assert job.task_id is None and provider.lookups == []


def test_a_lost_answer_with_a_seed_two_uploads_share_stays_uncertain():
    # A user's seed is the user's choice, shared by as many uploads as they like: it proves nothing in the list.
    runtime, store, storage, provider = ark()
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider, seed="7")
    job = store.job(job_a)
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"
    assert job.task_id is None and store.job(job_b).task_id in provider.tasks


def test_a_task_id_another_job_holds_is_never_adopted():
    # As if A's seed had collided with B's: the list shows B's task as A's one match. B's record holds it.
    runtime, store, storage, provider = ark()
    job_b = submitted(runtime, storage, key="uploads/b.jpg", sequencer="0B")
    task_b = present(store.job(job_b).task_id)
    provider.listed_task_id, provider.lose_answers_next = task_b, 1
    job_a = store.job(submitted(runtime, storage, key="uploads/a.jpg", sequencer="0A"))
    assert job_a.task_id is None and job_a.status is JobStatus.FAILED
    assert present(job_a.error).code == "SUBMISSION_UNCERTAIN" and task_b in present(job_a.error).message


def test_two_lost_answers_never_adopt_the_same_task():
    # Two jobs whose answers were lost, and a list that shows the same one task to both: the first claims it.
    runtime, store, storage, provider = ark()
    provider.lose_answers_next = 1
    first = store.job(submitted(runtime, storage, key="uploads/a.jpg", sequencer="0A"))
    (made,) = provider.tasks
    assert first.task_id == made
    provider.listed_task_id, provider.lose_answers_next = made, 1
    second = store.job(submitted(runtime, storage, key="uploads/b.jpg", sequencer="0B"))
    assert second.task_id is None and present(second.error).code == "SUBMISSION_UNCERTAIN"


def test_a_job_that_adopted_nothing_never_cancels_and_the_other_upload_succeeds():
    # The sequence: A's look-up could only find B's queued task; A is then superseded by a re-upload of its
    # key, and cancelling "its" queued task would delete B's.
    runtime, store, storage, provider = ark()
    provider.ready_after, provider.unready_state = 120, "PENDING"
    job_a, job_b = two_identical_uploads_the_second_answer_lost(runtime, provider)
    runtime.clock.advance(10)
    newer_a = submitted(runtime, storage, key="uploads/a.jpg", sequencer="0A1")
    poll(runtime, times=20)
    a, b = store.job(job_a), store.job(job_b)
    assert provider.cancels == [], f"cancelled {provider.cancels}; B's task is {b.task_id}"
    assert a.task_id is None and b.status is JobStatus.SUCCEEDED, b.error
    assert store.job(newer_a).status is JobStatus.SUCCEEDED


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


def test_a_resubmission_has_a_lookup_seed_of_its_own_and_a_silent_one_none() -> None:
    """A task resubmitted with a new seed is recognisable in the list by its own seed; one retried without audio
    keeps the first task's seed, which the list shows on the first task too, so it proves nothing."""
    job_id = "0123456789abcdef0123456789abcdef"
    first, again = lookup_seed(job_id), resubmission_seed(job_id, 1)
    assert first != again and 0 <= again < 2**31
    assert carries_lookup_seed({"seed": again}, job_id, 1)
    assert not carries_lookup_seed({"seed": first}, job_id, 1)  # silent: the first task's seed
    assert not carries_lookup_seed({"seed": again}, job_id, 0)
