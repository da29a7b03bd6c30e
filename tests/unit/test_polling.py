import json

import pytest

from seedance_pipeline.errors import ProviderAuthError, ProviderThrottled, ProviderUnavailable, ResultExpired
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import FakeDownloader, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"


def submitted(runtime, storage, key="uploads/a b/cat.jpg", metadata=None, sequencer="01"):
    storage.add(BUCKET, key, image_bytes(), metadata or {})
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1"), runtime, owner="s").job_id


def poll_until_terminal(runtime, store, *, limit=200):
    for _ in range(limit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(j.status.is_terminal for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("jobs never reached a terminal status")


def test_success_streams_the_video_and_sidecar_and_leaves_the_due_index():
    runtime, store, storage, provider = make_runtime()
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert storage.uploads[(BUCKET, f"videos/a b/cat.jpg.{job_id[:12]}.mp4")] == runtime.downloader.default
    assert (BUCKET, "videos/a b/cat.jpg.json") in storage.uploads
    assert store.items[job_id]["due_shard"] is None and store.items[job_id]["expires_at"]
    assert store.slots == set()
    assert runtime.events.published[-1].status is JobStatus.SUCCEEDED


def test_the_last_frame_is_delivered_when_asked_for():
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "SUCCEEDED", "last_frame_url": "https://cdn.example.com/last.png"}
    runtime.downloader = FakeDownloader({"https://cdn.example.com/last.png": b"\x89PNG last"})
    job_id = submitted(runtime, storage, metadata={"return-last-frame": "true"})
    poll_until_terminal(runtime, store)
    assert storage.uploads[(BUCKET, f"videos/a b/cat.jpg.{job_id[:12]}.last-frame.png")] == b"\x89PNG last"
    assert present(store.job(job_id).outputs).last_frame_key == f"videos/a b/cat.jpg.{job_id[:12]}.last-frame.png"


def test_provider_failure_ends_failed_with_the_providers_reason():
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "FAILED", "failure_reason": "The output video may contain sensitive information."}
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED
    assert present(job.error).message == "The output video may contain sensitive information."


def test_a_task_that_never_finishes_times_out_after_max_job_age():
    runtime, store, storage, provider = make_runtime(max_job_age_minutes=10)
    provider.ready_after = 10**9
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT
    assert "10 minutes" in present(job.error).message
    assert present(job.finished_at) - job.created_at <= 10 * 60 + 90


def test_status_checks_back_off_so_a_two_minute_job_costs_few_calls():
    runtime, store, storage, provider = make_runtime()
    provider.ready_after = 120
    submitted(runtime, storage, metadata={"resolution": "720p"})
    for _ in range(40):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(5)
    assert store.jobs()[0].status is JobStatus.SUCCEEDED
    assert provider.gets <= 8


def test_provider_outages_reschedule_instead_of_failing():
    runtime, store, storage, provider = make_runtime()
    job_id = submitted(runtime, storage)
    provider.get_error = ProviderUnavailable("HTTP 503")
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    job = store.job(job_id)
    assert job.status is JobStatus.SUBMITTED and present(job.last_error).code == "PROVIDER_UNAVAILABLE"
    provider.get_error = None
    poll_until_terminal(runtime, store)
    assert store.job(job_id).status is JobStatus.SUCCEEDED


def test_a_refused_key_keeps_jobs_alive_until_the_key_is_fixed():
    runtime, store, storage, provider = make_runtime()
    job_id = submitted(runtime, storage)
    provider.get_error = ProviderAuthError("HTTP 401")
    for _ in range(5):
        runtime.clock.advance(60)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(job_id).status is JobStatus.SUBMITTED
    provider.get_error = None
    poll_until_terminal(runtime, store)
    assert store.job(job_id).status is JobStatus.SUCCEEDED


def test_expired_results_fail_after_bounded_attempts_with_a_reason_that_says_so():
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(error=ResultExpired("the provider's result URL answered HTTP 403: expired"))
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED and present(job.error).code == "RESULT_EXPIRED"
    assert "gave up after 5 attempts" in present(job.error).message
    assert not any(key[1].endswith(".mp4") for key in storage.uploads)


def test_a_success_without_a_usable_url_fails_cleanly():
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "SUCCEEDED", "video_url": None}
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    assert present(store.job(job_id).error).code == "DOWNLOAD_REFUSED"


def test_waiting_jobs_are_submitted_as_capacity_frees():
    runtime, store, storage, provider = make_runtime(max_in_flight=2)
    for n in range(5):
        submitted(runtime, storage, key=f"uploads/{n}.jpg", sequencer=f"0{n}")
    assert len(provider.submissions) == 2
    poll_until_terminal(runtime, store)
    assert len(provider.submissions) == 5
    assert all(j.status is JobStatus.SUCCEEDED for j in store.jobs())


def test_a_crashed_submit_invocation_is_finished_by_the_poller():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    upload = Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1")
    from seedance_pipeline.models import Job
    from seedance_pipeline.rules.keys import due_shard_for, job_id_for

    now = runtime.clock()
    crashed = Job(
        job_id=job_id_for(upload),
        status=JobStatus.WAITING,
        source_bucket=BUCKET,
        source_key=upload.key,
        source_etag="e1",
        created_at=now,
        updated_at=now,
        next_check_at=now + 120,
        lease_owner="dead",
        lease_until=now + 120,
    )
    store.claim(crashed, due_shard=due_shard_for(crashed.job_id, 2))
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.submissions == []  # lease still held by the crashed invocation
    poll_until_terminal(runtime, store)
    assert store.job(crashed.job_id).status is JobStatus.SUCCEEDED and len(provider.submissions) == 1


def test_the_poller_uses_only_index_queries():
    runtime, store, storage, provider = make_runtime()
    submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    assert set(store.operations) == {"Query"}


def test_an_older_upload_does_not_write_outputs_once_a_newer_upload_exists():
    runtime, store, storage, provider = make_runtime()
    provider.ready_after = 45
    older = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="00A1")
    runtime.clock.advance(30)  # the newer upload's task finishes 30 s after the older one's
    newer = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="00A2")
    runtime.downloader = FakeDownloader({"https://cdn.example.com/cgt-00002.mp4": b"newer video"})
    poll_until_terminal(runtime, store)
    assert store.job(newer).status is JobStatus.SUCCEEDED
    assert store.job(older).status is JobStatus.FAILED and present(store.job(older).error).code == "SUPERSEDED"
    assert storage.uploads[(BUCKET, f"videos/cat.jpg.{newer[:12]}.mp4")] == b"newer video"
    # The older task was paid for: its video is kept at its own key, named in its error, never in the sidecar.
    kept = f"videos/cat.jpg.{older[:12]}.mp4"
    assert (BUCKET, kept) in storage.uploads and kept in present(store.job(older).error).message
    assert json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.json")])["job_id"] == newer


def test_a_waiting_job_that_raises_does_not_stall_the_jobs_behind_it(monkeypatch):
    runtime, store, storage, provider = make_runtime(max_in_flight=1)
    first = submitted(runtime, storage, key="uploads/a.jpg", sequencer="01")
    broken = submitted(runtime, storage, key="uploads/b.jpg", sequencer="02")
    third = submitted(runtime, storage, key="uploads/c.jpg", sequencer="03")
    assert store.job(broken).status is JobStatus.WAITING

    real_read = storage.read

    def read(bucket, key, **kwargs):
        if key == "uploads/b.jpg":
            raise RuntimeError("an S3 permission the operator forgot")
        return real_read(bucket, key, **kwargs)

    monkeypatch.setattr(storage, "read", read)
    for _ in range(30):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(30)
    assert store.job(first).status is JobStatus.SUCCEEDED
    assert store.job(third).status is JobStatus.SUCCEEDED
    assert store.job(broken).status is JobStatus.WAITING  # retried after its lease, until the age limit ends it
    runtime.clock.advance(2 * 3600)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(broken).status is JobStatus.TIMED_OUT


def test_a_slot_taken_just_before_a_crash_is_given_back_when_the_job_ends(monkeypatch):
    runtime, store, storage, provider = make_runtime()
    monkeypatch.setattr(
        storage, "presign_get", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash after the slot was taken"))
    )
    storage.add(BUCKET, "uploads/a.jpg", image_bytes())
    upload = Upload(bucket=BUCKET, key="uploads/a.jpg", sequencer="01", etag="e1")
    with pytest.raises(RuntimeError):
        accept_upload(upload, runtime, owner="s")
    assert len(store.slots) == 1
    runtime.clock.advance(3 * 3600)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.jobs()[0].status is JobStatus.TIMED_OUT
    assert store.slots == set()


def test_a_job_paid_just_before_its_age_limit_is_still_asked_and_delivered():
    runtime, store, storage, provider = make_runtime(max_in_flight=1, max_job_age_minutes=10)
    provider.ready_after = 10**9
    first = submitted(runtime, storage, key="uploads/a.jpg", sequencer="01")
    late = submitted(runtime, storage, key="uploads/b.jpg", sequencer="02")
    runtime.clock.advance(570)  # the second job waits 9.5 minutes for the first one's slot
    provider.ready_after = 45
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(first).status is JobStatus.SUCCEEDED
    paid = store.job(late)
    assert paid.task_id and present(paid.submitted_at) - paid.created_at >= 570

    runtime.clock.advance(40)  # its first check falls after created_at + 10 minutes
    poll_until_terminal(runtime, store)
    job = store.job(late)
    assert job.status is JobStatus.SUCCEEDED and job.checks >= 1


def test_a_paid_job_times_out_only_after_being_asked_counting_from_its_submission():
    runtime, store, storage, provider = make_runtime(max_in_flight=1, max_job_age_minutes=10)
    provider.ready_after = 10**9
    first = submitted(runtime, storage, key="uploads/a.jpg", sequencer="01")
    late = submitted(runtime, storage, key="uploads/b.jpg", sequencer="02")
    runtime.clock.advance(570)
    provider.ready_after = 45
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(first).status is JobStatus.SUCCEEDED
    provider.ready_after = 10**9  # the paid job never finishes
    poll_until_terminal(runtime, store)
    job = store.job(late)
    assert job.status is JobStatus.TIMED_OUT and job.checks >= 1
    assert 10 * 60 <= present(job.finished_at) - present(job.submitted_at) <= 10 * 60 + 90
    assert "of its submission" in present(job.error).message and "IN_PROGRESS" in present(job.error).message


def test_a_paid_job_never_answered_is_timed_out_at_twice_the_limit_not_kept_forever():
    runtime, store, storage, provider = make_runtime(max_job_age_minutes=10)
    job_id = submitted(runtime, storage)
    provider.get_error = ProviderUnavailable("HTTP 503")
    poll_until_terminal(runtime, store, limit=200)
    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT and job.checks == 0
    assert 20 * 60 <= present(job.finished_at) - present(job.submitted_at) <= 20 * 60 + 90
    assert "HTTP 503" in present(job.error).message


def test_queued_jobs_cost_no_s3_read_while_no_slot_is_free_even_with_a_stale_last_error():
    runtime, store, storage, provider = make_runtime(max_in_flight=50)
    provider.submit_error = ProviderThrottled("429", retry_after=1)
    for n in range(50):
        submitted(runtime, storage, key=f"uploads/{n:02d}.jpg", sequencer=f"{n + 1:02x}")
    assert all(j.status is JobStatus.WAITING and j.last_error for j in store.jobs())
    provider.submit_error = None
    provider.ready_after = 10**9
    runtime.settings = runtime.settings.model_copy(update={"max_in_flight": 1})
    storage.reads = 0

    runtime.clock.advance(60)
    report = run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert report.passes >= 3
    assert len(provider.submissions) == 1
    assert storage.reads == 1, "only the job that got the slot reads its image"
    assert report.outcomes["WAITING"] <= report.passes, "each pass stops at the first job that finds no capacity"
