"""Findings of the wave-3 hostile review: each test shows one hole (xfail strict while it is still open)."""

from __future__ import annotations

import json

import pytest

from seedance_pipeline.adapters.job_store import JobStore, serialize
from seedance_pipeline.adapters.provider_client import SeedanceClient
from seedance_pipeline.errors import SecretUnavailable, SubmissionUncertain
from seedance_pipeline.logic.due_book import Tracked
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.status_check import check_job, check_without_lease, record_still_running
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Job, JobStatus, Upload, bounded_usage
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeDownloader, FakeProvider, make_runtime
from tests.support.images import image_bytes
from tests.support.raw_http import RawHttpServer, json_answer

BUCKET = "in-bucket"
KEY = "uploads/cat.jpg"
SIDECAR = "videos/cat.jpg.json"


def _check_now(runtime, store, job_id):
    job = store.acquire_lease(store.job(job_id), owner="p", now=runtime.clock(), lease_seconds=330)
    return check_job(job, runtime, owner="p")


def test_an_older_backfilled_upload_never_replaces_the_outputs_of_a_newer_upload():
    """A strict xfail on 26248cd: a job without a sequencer (backfill, or an event without one) delivered over a
    newer upload's outputs and deleted the newer video. Now, without two sequencers to compare, the object's own
    evidence decides: the older job's object is no longer the key's current one, so it replaces nothing, and its
    paid video is kept at its own key, named in its error."""
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(
        {"https://cdn.example.com/cgt-00001.mp4": b"old video", "https://cdn.example.com/cgt-00002.mp4": b"new video"}
    )
    # Backfill found the object (no event, so no sequencer) and sent it.
    storage.add(BUCKET, KEY, image_bytes(), etag="old")
    older = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="old"), runtime, owner="backfill").job_id
    assert older is not None and store.job(older).status is JobStatus.SUBMITTED
    # Then the user uploads a new version of the key: a normal event, with a sequencer.
    runtime.clock.advance(5)
    storage.add(BUCKET, KEY, image_bytes(640, 480), etag="new")
    newer = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="new", sequencer="0A"), runtime, owner="s").job_id
    assert newer is not None and store.job(newer).status is JobStatus.SUBMITTED

    # The newer task finishes first (the older one's first delivery attempt, say, was lost to a crash).
    runtime.clock.advance(120)
    assert _check_now(runtime, store, newer).status is JobStatus.SUCCEEDED
    newer_video = json.loads(storage.uploads[(BUCKET, SIDECAR)])["outputs"]["video"]
    _check_now(runtime, store, older)

    sidecar = json.loads(storage.uploads[(BUCKET, SIDECAR)])
    assert sidecar["job_id"] == newer, "the sidecar of the key now vouches for the older upload"
    assert storage.uploads.get((BUCKET, newer_video)) == b"new video", "the newer upload's paid video was deleted"
    replaced = store.job(older)
    assert replaced.status is JobStatus.FAILED and present(replaced.error).code == "SUPERSEDED"
    kept = present(replaced.error).message.split(f"s3://{BUCKET}/", 1)[1].split()[0]
    assert storage.uploads.get((BUCKET, kept)) == b"old video"


@pytest.mark.parametrize("tiny", [1e-300, 5e-324, -1e-200])
def test_a_provider_usage_number_too_small_for_dynamodb_never_makes_the_job_unsaveable(tiny):
    """Failed before the fix: bounded_usage kept any finite number under 1e15, but DynamoDB numbers stop at a
    magnitude of 1e-130 and boto3's serializer raises decimal.Underflow: every save of the job (and the optimistic
    record_check) raised, and the paid job could never be recorded again, not even as TIMED_OUT."""
    job = Job(
        job_id="0" * 32,
        status=JobStatus.RUNNING,
        source_bucket=BUCKET,
        source_key=KEY,
        created_at=1_800_000_000.0,
        updated_at=1_800_000_000.0,
        usage={"completion_tokens": 1200, "cost": tiny},
    )
    serialize(JobStore._item(job, due_shard="0"))  # what save() sends
    recorded = bounded_usage({"completion_tokens": 1200, "cost": tiny})
    serialize({"usage": recorded})  # what record_check() sends
    assert recorded == {"completion_tokens": 1200}


def _secret_outage(runtime):
    def unreadable(_force: bool):
        raise SecretUnavailable(
            "the API key secret is throttled: retry later", secret_id="seedance-key", cause="ThrottlingException"
        )

    runtime.provider_factory = unreadable
    runtime.refresh_provider()


def test_a_secret_outage_never_times_out_a_paid_job_the_provider_was_not_asked_about():
    runtime, store, storage, provider = make_runtime(max_job_age_minutes=10)
    provider.ready_after = 10**9
    storage.add(BUCKET, KEY, image_bytes())
    job_id = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e1", sequencer="01"), runtime, owner="s").job_id
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(job_id).status is JobStatus.RUNNING and store.job(job_id).checks >= 1

    _secret_outage(runtime)  # our Secrets Manager read fails for the next 15 minutes: nobody asks the provider
    asked = provider.gets
    for _ in range(30):
        runtime.clock.advance(30)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.gets == asked
    assert not store.job(job_id).status.is_terminal, present(store.job(job_id).error).message


def test_an_optimistic_status_answer_about_an_old_task_is_never_recorded_on_the_jobs_new_task():
    """Failed before the fix: record_check's condition (status, checks, no lease, in the due index) did not name the
    task, so an answer about the job's previous task (read before an operator retry) was recorded on its new one."""
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes())
    job_id = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e1", sequencer="01"), runtime, owner="s").job_id
    stale = next(j for shard in ("0", "1") for j in store.due_jobs(shard, runtime.clock() + 10**6))
    assert stale.task_id == "cgt-00001" and stale.checks == 0
    # The first task is given up (say, a person saw it stuck) and the job is retried: a new task, checks back at 0.
    job = store.acquire_lease(store.job(job_id), owner="op", now=runtime.clock(), lease_seconds=60)
    store.save(
        job.model_copy(update={"task_id": "cgt-00002", "lease_owner": None, "lease_until": None}),
        owner="op",
        due_shard="0",
    )
    provider.tasks["cgt-00002"] = {"body": {}, "at": runtime.clock()}

    # A poller that read the index before the retry now records its answer about cgt-00001.
    provider.tasks["cgt-00001"]["at"] = runtime.clock()  # still running, as the old task says
    checked, _ = check_without_lease(Tracked.as_read(stale), runtime)
    assert checked is not None and checked.job.task_id == "cgt-00001"
    assert not record_still_running(checked, runtime)
    assert store.job(job_id).checks == 0, "a check of the old task was counted for the new one"


@pytest.mark.parametrize("task_id", [".", ".."])
def test_a_task_id_that_is_a_dot_segment_is_never_taken_as_an_id_we_can_ask_about(task_id):
    """Failed before the fix: "." and ".." passed as task ids, and urllib3 removes dot segments from the path, so
    every status check of the paid task asked /v2/videos/generations/ or /v2/videos/ instead (a list or another
    endpoint), never the task: the job ended TIMED_OUT after MaxJobAgeMinutes. Now the answer is uncertain and a
    person looks, as for any answer without a usable id."""
    server = RawHttpServer()
    try:
        server.answer(json_answer(200, json.dumps({"task_id": task_id})))
        client = SeedanceClient(server.base_url, "sk-test", retries=0)
        with pytest.raises(SubmissionUncertain):
            client.submit({"model": "m", "prompt": "p", "images": ["https://x/i.png"]})
    finally:
        server.close()


class _AnswersAboutAnotherTask(FakeProvider):
    """A gateway (a cache keyed without the path, a proxy mixing up answers) answers with another task's result."""

    def get(self, task_id, *, deadline=None):
        answer = super().get(task_id, deadline=deadline)
        return answer.model_copy(update={"task_id": "cgt-someone-elses", "video_url": "https://cdn.example.com/x.mp4"})


def test_a_status_answer_about_another_task_never_delivers_that_tasks_video():
    clock = FakeClock()
    runtime, store, storage, _ = make_runtime(clock, provider=_AnswersAboutAnotherTask(clock))
    storage.add(BUCKET, KEY, image_bytes())
    job_id = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e1", sequencer="01"), runtime, owner="s").job_id
    runtime.clock.advance(120)
    for _ in range(5):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(60)
    assert store.job(job_id).status is not JobStatus.SUCCEEDED


class _Crash(BaseException):
    """The Lambda process dies here: no except-branch of ours sees it."""


def test_a_crash_between_the_claim_and_the_newest_upload_record_never_lets_the_older_upload_win():
    """Failed before the fix: the crash left the newest upload unrecorded, the poller still paid for it, and its
    superseded check at delivery (latest_job_for != job) failed it as replaced by the older upload, whose video
    stayed the key's outputs. Now the record is made good before anything is sent."""
    runtime, store, storage, _ = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), etag="e1")
    older = accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e1", sequencer="01"), runtime, owner="s1").job_id
    runtime.clock.advance(5)
    storage.add(BUCKET, KEY, image_bytes(640, 480), etag="e2")

    def crash(*_args, **_kwargs):
        raise _Crash("killed after the claim")

    record_latest, store.record_latest_upload = store.record_latest_upload, crash  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e2", sequencer="02"), runtime, owner="s2")
    store.record_latest_upload = record_latest  # type: ignore[method-assign]
    # Lambda's retry of the event finds the job claimed (a duplicate); the poller sends it once the claim lease ends.
    for _ in range(20):
        runtime.clock.advance(60)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    newer = next(j for j in store.jobs() if j.source_etag == "e2")
    assert store.job(older).status.is_terminal and newer.status.is_terminal
    shown = json.loads(storage.uploads[(BUCKET, SIDECAR)])["job_id"]
    assert shown == newer.job_id, f"the key shows the older upload; the newer ended {newer.status}: {newer.error}"


def test_an_older_upload_still_waiting_for_capacity_when_a_newer_one_arrives_is_never_paid_for():
    """Before the same fix this job was sent (paid), then failed SUPERSEDED at delivery. A versioned bucket, and the
    same bytes uploaded again (same ETag, a new version): the older version stays readable, so only the newest-upload
    record can tell."""
    runtime, store, storage, provider = make_runtime(max_in_flight=1)
    storage.add(BUCKET, "uploads/other.jpg", image_bytes(), etag="x")
    accept_upload(Upload(bucket=BUCKET, key="uploads/other.jpg", etag="x", sequencer="01"), runtime, owner="s")
    storage.add(BUCKET, KEY, image_bytes(), etag="e1")
    first = Upload(bucket=BUCKET, key=KEY, etag="e1", version_id="v1", sequencer="02")
    older = accept_upload(first, runtime, owner="s")
    assert older.outcome is JobStatus.WAITING
    runtime.clock.advance(5)
    second = Upload(bucket=BUCKET, key=KEY, etag="e1", version_id="v2", sequencer="03")
    newer = accept_upload(second, runtime, owner="s")
    assert newer.outcome is JobStatus.WAITING
    for _ in range(20):
        runtime.clock.advance(60)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(newer.job_id).status is JobStatus.SUCCEEDED
    assert store.job(older.job_id).status is JobStatus.REJECTED
    assert len(provider.submissions) == 2  # the other key's and the newer upload's: never the older one
