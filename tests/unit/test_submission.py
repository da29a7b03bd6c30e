import threading

from seedance_pipeline.errors import ProviderAuthError, ProviderRejected, ProviderThrottled, SubmissionUncertain
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"


def upload(key="uploads/cat.jpg", sequencer="00A1", size=None):
    return Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1", size=size)


def test_a_good_upload_is_submitted_once_and_scheduled_for_its_first_check():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), {"prompt": "A cat", "resolution": "480p"})
    outcome = accept_upload(upload(), runtime, owner="req-1")
    assert outcome.outcome == "SUBMITTED"
    job = store.job(outcome.job_id)
    assert job.task_id == "cgt-00001" and job.attempts == 1
    assert present(job.request).prompt == "A cat" and present(job.request).resolution == "480p"
    assert present(job.next_check_at) > runtime.clock() and job.lease_owner is None
    assert provider.submissions[0]["images"][0].startswith("https://")
    assert store.slots == {job.job_id}


def test_a_duplicate_delivery_does_nothing():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    assert accept_upload(upload(), runtime, owner="a").outcome == "SUBMITTED"
    assert accept_upload(upload(), runtime, owner="b").outcome == "DUPLICATE"
    assert len(provider.submissions) == 1


def test_concurrent_duplicate_deliveries_make_one_submission():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(accept_upload(upload(), runtime, owner="x"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.outcome for o in outcomes) == ["DUPLICATE"] * 7 + ["SUBMITTED"]
    assert len(provider.submissions) == 1


def test_an_invalid_image_is_rejected_without_a_provider_call():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", b"not an image")
    outcome = accept_upload(upload(), runtime, owner="a")
    assert outcome.outcome == "REJECTED"
    job = store.job(outcome.job_id)
    assert present(job.error).code == "NOT_AN_IMAGE" and "not a readable image" in present(job.error).message
    assert provider.submissions == [] and store.slots == set()
    assert runtime.events.published[-1].status is JobStatus.REJECTED


def test_an_announced_size_over_100_mb_is_rejected_without_reading_the_object():
    # 30 to 100 MB is read and scaled down under the provider's 30 MB (rules/image_rules.py).
    runtime, store, storage, provider = make_runtime()
    outcome = accept_upload(upload(size=101 * 1024 * 1024), runtime, owner="a")
    assert outcome.outcome == "REJECTED" and storage.reads == 0


def test_bad_metadata_rejects_the_image_naming_the_field():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), {"duration": "7"})
    outcome = accept_upload(upload(), runtime, owner="a")
    assert outcome.outcome == "REJECTED"
    assert "'duration'" in present(outcome.reason) and provider.submissions == []


def test_an_object_overwritten_since_the_event_is_rejected_as_gone():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), etag="newer")
    outcome = accept_upload(upload(), runtime, owner="a")
    assert outcome.outcome == "REJECTED"
    assert present(store.job(outcome.job_id).error).code == "OBJECT_GONE"


def test_ignored_keys_create_no_job():
    runtime, store, storage, provider = make_runtime()
    for key in ["videos/cat.mp4", "other/cat.jpg", "uploads/folder/"]:
        assert accept_upload(upload(key=key), runtime, owner="a").outcome == "IGNORED"
    assert store.items == {}


def test_without_capacity_the_job_waits_in_the_due_index():
    runtime, store, storage, provider = make_runtime(max_in_flight=1)
    storage.add(BUCKET, "uploads/a.jpg", image_bytes())
    storage.add(BUCKET, "uploads/b.jpg", image_bytes())
    assert accept_upload(upload("uploads/a.jpg", "01"), runtime, owner="a").outcome == "SUBMITTED"
    outcome = accept_upload(upload("uploads/b.jpg", "02"), runtime, owner="a")
    assert outcome.outcome == "WAITING"
    assert store.items[present(outcome.job_id)]["due_shard"] is not None
    assert len(provider.submissions) == 1


def test_throttling_and_bad_keys_leave_the_job_waiting_not_failed():
    for error in (ProviderThrottled("429", retry_after=30), ProviderAuthError("401")):
        runtime, store, storage, provider = make_runtime()
        storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
        provider.submit_error = error
        outcome = accept_upload(upload(), runtime, owner="a")
        job = store.job(outcome.job_id)
        assert job.status is JobStatus.WAITING and job.submission_started_at is None
        assert present(job.last_error).code == error.code
        assert store.slots == set()


def test_a_provider_400_fails_the_job_with_the_providers_reason():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    provider.submit_error = ProviderRejected("HTTP 400 InputImageSensitiveContentDetected: sensitive", code="Sensitive")
    outcome = accept_upload(upload(), runtime, owner="a")
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.FAILED and "sensitive" in present(job.error).message
    assert store.slots == set()


def test_an_uncertain_submission_is_never_resent_automatically():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    provider.submit_error = SubmissionUncertain("read timeout")
    outcome = accept_upload(upload(), runtime, owner="a")
    assert store.job(outcome.job_id).status is JobStatus.FAILED
    assert present(store.job(outcome.job_id).error).code == "SUBMISSION_UNCERTAIN"


def test_data_url_delivery_embeds_the_image():
    runtime, store, storage, provider = make_runtime(image_delivery="data-url")
    storage.add(BUCKET, "uploads/cat.png", image_bytes(fmt="PNG"))
    accept_upload(upload("uploads/cat.png"), runtime, owner="a")
    assert provider.submissions[0]["images"][0].startswith("data:image/png;base64,")


def test_an_older_event_arriving_after_a_newer_one_is_not_processed():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    newer = accept_upload(upload(sequencer="00B2"), runtime, owner="a")
    older = accept_upload(upload(sequencer="00A1"), runtime, owner="b")
    assert newer.outcome == "SUBMITTED"
    assert older.outcome == "REJECTED" and "newer upload" in present(older.reason)
    assert len(provider.submissions) == 1


def test_a_reupload_of_the_same_key_is_a_new_job():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    first = accept_upload(upload(sequencer="00A1"), runtime, owner="a")
    second = accept_upload(upload(sequencer="00A2"), runtime, owner="a")
    assert first.job_id != second.job_id
    assert [first.outcome, second.outcome] == ["SUBMITTED", "SUBMITTED"]
    assert len(provider.submissions) == 2
