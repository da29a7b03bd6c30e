import threading
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.errors import (
    ErrorCode,
    ObjectArchived,
    ProviderAuthError,
    ProviderRejected,
    ProviderThrottled,
    SubmissionUncertain,
)
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload, handle_event
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.triggers.upload_events import parse_trigger_event
from tests.support.expect import present
from tests.support.fakes import FakeStorage, FakeStore, make_runtime, make_runtime_with
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
    posts: list[dict[str, Any]] = []
    real_submit = provider.submit

    def submit_once_uncertain(body: dict[str, Any], *, deadline: float | None = None) -> str:
        posts.append(body)
        if len(posts) == 1:  # the body left, the answer was lost; a second POST would be answered (and billed)
            raise SubmissionUncertain("read timeout")
        return real_submit(body, deadline=deadline)

    provider.submit = submit_once_uncertain  # type: ignore[method-assign]
    outcome = accept_upload(upload(), runtime, owner="a")
    assert outcome.job_id is not None
    # Everything that runs on its own afterwards: the same S3 event delivered again, and polls for hours.
    accept_upload(upload(), runtime, owner="b")
    for _ in range(24):
        runtime.clock.advance(600)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert len(posts) == 1, f"the uncertain submission was sent {len(posts)} times"
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.FAILED and job.task_id is None
    assert present(job.error).code == "SUBMISSION_UNCERTAIN"


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


# --- issue 19: a sent job is never called never-submitted; every waiting job ends; S3's "null" version -------------


class _TaskIdWriteRefused(FakeStore):
    """DynamoDB refuses the one write that records a task id (a throttle), as a crash at that moment would lose it."""

    refuse = True

    def save(self, job, *, owner, due_shard, expires_at=None):
        if self.refuse and job.task_id is not None:
            self.refuse = False
            raise _throttled("PutItem")
        super().save(job, owner=owner, due_shard=due_shard, expires_at=expires_at)


def _throttled(operation):
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeded"}}
    return ClientError(error, operation)  # type: ignore[arg-type]


def _poll(runtime, times=1, step=30.0):
    for _ in range(times):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(step)


def test_a_job_sent_just_before_its_waiting_age_ran_out_is_uncertain_never_never_submitted():
    """Failed on 26248cd: the age check ran before the guard for a POST without a recorded answer, so the job was
    ended TIMED_OUT NEVER_SUBMITTED ("could not be submitted") although its task exists and is billed."""
    runtime, store, storage, provider = make_runtime_with(_TaskIdWriteRefused, max_in_flight=1, max_job_age_minutes=10)
    store.refuse = False
    storage.add(BUCKET, "uploads/first.jpg", image_bytes())
    first = accept_upload(upload("uploads/first.jpg", "01"), runtime, owner="s").job_id
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    waiting = accept_upload(upload(sequencer="02"), runtime, owner="s").job_id
    assert store.job(waiting).status is JobStatus.WAITING
    # The first job holds the only slot for almost all of the second one's waiting age.
    provider.ready_after = 10**9
    runtime.clock.advance(600 - 40)
    store.release_slot(present(first))
    store.refuse = True
    _poll(runtime)  # the POST leaves, the task exists, the write of its id is refused
    assert len(provider.submissions) == 2 and store.job(waiting).task_id is None
    _poll(runtime, times=20)

    job = store.job(waiting)
    assert job.status is JobStatus.FAILED, present(job.error).message
    assert present(job.error).code == ErrorCode.SUBMISSION_UNCERTAIN
    assert len(provider.submissions) == 2, "the uncertain job was sent again"


class _ArchivedImage(FakeStorage):
    """S3 answers GetObject on an object moved to an archive storage class with 403 InvalidObjectState."""

    archived = False

    def read(self, bucket, key, **kwargs):
        if self.archived:
            raise ObjectArchived(f"s3://{bucket}/{key} is archived (InvalidObjectState)")
        return super().read(bucket, key, **kwargs)


class _ImageUnreadable(FakeStorage):
    """Any fault no adapter classifies (a missing permission, say) on every read of the image."""

    fault: Exception | None = None

    def read(self, bucket, key, **kwargs):
        if self.fault is not None:
            raise self.fault
        return super().read(bucket, key, **kwargs)


def _held_by_the_budget(storage):
    runtime, store, _, provider = make_runtime(storage=storage, daily_token_budget=1, max_job_age_minutes=10)
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    job_id = accept_upload(upload(), runtime, owner="s").job_id
    job = store.job(job_id)
    assert job.status is JobStatus.WAITING
    assert present(job.last_error).code == ErrorCode.DAILY_BUDGET_REACHED
    return runtime, store, provider, present(job_id)


def test_a_job_the_budget_held_whose_image_then_cannot_be_read_ends_when_its_waiting_age_runs_out():
    """Failed on 26248cd: last_error stayed DAILY_BUDGET_REACHED after the unexpected fault, and past_waiting_age is
    false while it names the budget: the job stayed WAITING for ever, its image read on every retry."""
    storage = _ImageUnreadable()
    runtime, store, provider, job_id = _held_by_the_budget(storage)
    runtime.settings = runtime.settings.model_copy(update={"daily_token_budget": 10**9})  # the budget is raised...
    # ...but the function lost s3:GetObject on the bucket.
    storage.fault = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    _poll(runtime, times=60)  # 30 minutes: three times MaxJobAgeMinutes

    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT, f"still {job.status}: {job.last_error}"
    assert present(job.error).code == ErrorCode.NEVER_SUBMITTED
    assert "AccessDenied" in present(job.error).message
    assert provider.submissions == [] and store.slots == set()


def test_an_image_archived_while_its_job_waited_for_the_budget_ends_it_with_its_own_reason():
    storage = _ArchivedImage()
    runtime, store, provider, job_id = _held_by_the_budget(storage)
    runtime.settings = runtime.settings.model_copy(update={"daily_token_budget": 10**9})
    storage.archived = True
    _poll(runtime, times=12)  # past the budget's retry

    job = store.job(job_id)
    assert job.status is JobStatus.REJECTED
    assert present(job.error).code == ErrorCode.IMAGE_ARCHIVED
    assert provider.submissions == [] and store.slots == set()


def _null_version_event(etag, sequencer):
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2027-01-15T10:00:00.000Z",
        "s3": {
            "bucket": {"name": BUCKET},
            "object": {
                "key": "uploads/cat.jpg",
                "size": 1000,
                "eTag": etag,
                "versionId": "null",
                "sequencer": sequencer,
            },
        },
    }
    return {"Records": [record]}


def test_s3s_null_version_id_is_no_version_so_a_reupload_is_a_new_job_not_a_duplicate():
    """Failed on 26248cd: "null" (versioning suspended) was taken as a version id, so every re-upload of the key got
    the first upload's job id and was dropped as DUPLICATE."""
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), etag="e1")
    first = handle_event(parse_trigger_event(_null_version_event("e1", "01")), runtime, owner="s").outcomes[0]
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(640, 480), etag="e2")
    second = handle_event(parse_trigger_event(_null_version_event("e2", "02")), runtime, owner="s").outcomes[0]

    assert first.outcome is JobStatus.SUBMITTED and second.outcome is JobStatus.SUBMITTED
    assert first.job_id != second.job_id
    assert store.job(second.job_id).source_version_id is None
    assert len(provider.submissions) == 2


def test_eventbridge_null_version_id_is_no_version_either():
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2027-01-15T10:00:00Z",
        "detail": {
            "bucket": {"name": BUCKET},
            "object": {"key": "uploads/cat.jpg", "size": 10, "etag": "e1", "version-id": "null", "sequencer": "01"},
        },
    }
    assert parse_trigger_event(event).uploads[0].version_id is None


class _SlotTableBroken(FakeStore):
    """Every slot take fails with a fault no code of ours classifies (a missing dynamodb permission, say)."""

    broken = False

    def acquire_slot(self, job_id, limit, *, new_holder=False):
        if self.broken:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "UpdateItem")
        return super().acquire_slot(job_id, limit, new_holder=new_holder)


def test_a_job_the_budget_held_ends_even_when_a_fault_leaves_the_budget_as_its_last_word():
    """Failed on 26248cd: the fault escaped before anything replaced last_error (DAILY_BUDGET_REACHED), so
    past_waiting_age stayed false and the job stayed WAITING for ever. The budget's hold now lasts until the next
    UTC day at the latest; the job's age counts from there."""
    runtime, store, storage, provider = make_runtime_with(
        _SlotTableBroken, daily_token_budget=1, max_job_age_minutes=10
    )
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    job_id = accept_upload(upload(), runtime, owner="s").job_id
    assert present(store.job(job_id).last_error).code == ErrorCode.DAILY_BUDGET_REACHED
    runtime.settings = runtime.settings.model_copy(update={"daily_token_budget": 10**9})
    store.broken = True
    for _ in range(2 * 24 * 6):  # two days, every 10 minutes
        if store.job(job_id).status.is_terminal:
            break
        _poll(runtime, step=600)

    job = store.job(job_id)
    assert job.status is JobStatus.TIMED_OUT and present(job.error).code == ErrorCode.NEVER_SUBMITTED
    assert provider.submissions == []


_HEX = st.text(alphabet="0123456789ABCDEF", min_size=2, max_size=18)


@given(first=st.tuples(_HEX, _HEX), second=st.tuples(_HEX, _HEX))
def test_two_uploads_of_a_key_with_the_null_version_share_a_job_id_only_when_they_are_one_upload(first, second):
    """Property: "null" never identifies an upload; the ETag and sequencer do, as for an unversioned bucket."""
    a = Upload(bucket=BUCKET, key="uploads/cat.jpg", version_id="null", etag=first[0], sequencer=first[1])
    b = Upload(bucket=BUCKET, key="uploads/cat.jpg", version_id="null", etag=second[0], sequencer=second[1])
    assert a.version_id is None and b.version_id is None
    assert (job_id_for(a) == job_id_for(b)) == (first[1] == second[1])
