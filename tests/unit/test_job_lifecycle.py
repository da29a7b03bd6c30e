"""Terminal transitions are completed by whoever finds them unfinished; no slot outlives its job."""

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"


def submitted(runtime, storage, key="uploads/cat.jpg", sequencer="01", metadata=None):
    storage.add(BUCKET, key, image_bytes(), metadata or {})
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1"), runtime, owner="s").job_id


def release_fails_once(store):
    real = store.release_slot
    calls = []

    def release_slot(job_id, *, slot=None):
        calls.append(job_id)
        if len(calls) == 1:
            raise ConnectionError("DynamoDB did not answer the slot release")
        real(job_id, slot=slot)

    store.release_slot = release_slot
    return calls


def poll_for(runtime, seconds, step=30):
    for _ in range(int(seconds // step)):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(step)


def test_a_slot_release_that_fails_after_the_terminal_save_is_completed_by_a_later_poll():
    runtime, store, storage, provider = make_runtime()
    job_id = submitted(runtime, storage)
    release_fails_once(store)
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)

    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.finalize_pending
    assert store.slots == {job_id}, "the release failed, so the slot is still held"
    assert store.items[job_id]["due_shard"] is not None, "an unfinished terminal job stays findable"

    poll_for(runtime, 15 * 60)
    job = store.job(job_id)
    assert store.slots == set()
    assert not job.finalize_pending and store.items[job_id]["due_shard"] is None
    assert [j.job_id for j in runtime.events.published if j.status is JobStatus.SUCCEEDED] == [job_id]
    assert job.lease_owner is None and store.items[job_id]["expires_at"]


def test_a_failed_release_at_upload_time_does_not_escape_and_is_completed_by_the_poller():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/bad.jpg", b"not an image")
    release_fails_once(store)
    outcome = accept_upload(Upload(bucket=BUCKET, key="uploads/bad.jpg", sequencer="01", etag="e1"), runtime, owner="s")
    assert outcome.outcome == "REJECTED"
    assert runtime.events.published == []
    poll_for(runtime, 10 * 60)
    assert [j.status for j in runtime.events.published] == [JobStatus.REJECTED]
    assert not store.job(outcome.job_id).finalize_pending and store.slots == set()


def test_a_slot_held_by_a_finished_or_missing_job_is_given_back_when_jobs_queue():
    runtime, store, storage, provider = make_runtime(max_in_flight=2)
    provider.outcome = {"state": "FAILED", "failure_reason": "moderation"}
    done = submitted(runtime, storage, key="uploads/done.jpg", sequencer="01")
    poll_for(runtime, 120)
    assert store.job(done).status is JobStatus.FAILED
    # Slots leaked by a release lost before terminal transitions were completed (an older version, a deleted job).
    for leaked in (done, "a-job-that-was-deleted"):
        store.slot_items[len(store.slot_items)] = leaked
    provider.outcome = {"state": "SUCCEEDED"}
    waiting = submitted(runtime, storage, key="uploads/next.jpg", sequencer="02")
    assert store.job(waiting).status is JobStatus.WAITING

    report = run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert report.stale_slots_released == 2
    assert store.job(waiting).status in (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert store.slots <= {waiting}


def test_a_live_job_keeps_its_slot_when_slots_are_reconciled():
    runtime, store, storage, provider = make_runtime(max_in_flight=1)
    provider.ready_after = 10**9
    live = submitted(runtime, storage, key="uploads/a.jpg", sequencer="01")
    waiting = submitted(runtime, storage, key="uploads/b.jpg", sequencer="02")
    runtime.clock.advance(30)
    report = run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert report.stale_slots_released == 0
    assert store.slots == {live} and store.job(waiting).status is JobStatus.WAITING
