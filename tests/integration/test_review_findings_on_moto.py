"""Findings of the wave-3 hostile review that need the real JobStore (moto): xfail strict while open."""

from __future__ import annotations

import json
import time
from typing import cast

import pytest

from seedance_local.local_stack import LocalStack
from seedance_pipeline.adapters.job_store import JobStore
from seedance_pipeline.adapters.object_storage import ObjectStorage
from seedance_pipeline.adapters.slot_items import slot_item_id
from seedance_pipeline.errors import ObjectArchived, ProviderUnavailable
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.runtime import Runtime, build_runtime
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL, FakeClock, FakeDownloader, FakeProvider, FakeStorage, RecordingEvents
from tests.support.images import image_bytes

BUCKET = "in-bucket"


def test_a_paid_job_keeps_its_slot_for_as_long_as_it_can_live(stack: LocalStack) -> None:
    """Failed before the fix: slots expired MaxJobAgeMinutes + LeaseSeconds + 1 h after the take, while a paid job
    never answered lives 2 x MaxJobAgeMinutes; another job took the slot and MaxInFlight was exceeded."""
    # Far beyond the real date: a slot expiry counted on the real clock cannot pass for one counted on this one.
    clock = FakeClock(start=4_000_000_000.0)
    settings = Settings(
        jobs_table_name=stack.table_name,
        input_bucket=BUCKET,
        due_index_shards=1,
        max_in_flight=1,
        api_base_url=GATEWAY_URL,
    )
    # The store exactly as a Lambda cold start builds it (its slot lifetime), on the fake clock.
    store = cast(JobStore, build_runtime(settings, session=stack.boto3_session()).store)
    # Every clock the store reads (the slots have their own): the guard below fails if one is missed.
    store._clock = clock
    store._slots._clock = clock
    provider = FakeProvider(clock)
    storage = FakeStorage()
    runtime = Runtime(
        settings=settings,
        store=store,
        storage=storage,
        downloader=FakeDownloader(),
        provider_factory=lambda _force: provider,
        events=RecordingEvents(),
        clock=clock,
        sleep=clock.advance,
    )
    storage.add(BUCKET, "uploads/first.jpg", image_bytes(), etag="e1")
    first = accept_upload(Upload(bucket=BUCKET, key="uploads/first.jpg", etag="e1", sequencer="01"), runtime, owner="s")
    assert first.outcome is JobStatus.SUBMITTED and first.job_id is not None
    age_limit = settings.max_job_age_seconds
    slot = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"job_id": {"S": slot_item_id(0)}})["Item"]
    assert slot["holder"]["S"] == first.job_id
    assert int(slot["expires_at"]["N"]) >= clock() + 2 * age_limit + settings.lease_seconds, (
        f"the slot expires {int(slot['expires_at']['N']) - clock():.0f} s after its take (on the fake clock), "
        f"yet a paid job lives {2 * age_limit:.0f} s"
    )

    # The provider's status endpoint is down (502s), the task is paid and running: the job is asked, again and again.
    provider.get_error = ProviderUnavailable("HTTP 502 on a status check")
    while clock() - store.get(first.job_id).submitted_at < 2 * age_limit - 600:  # type: ignore[union-attr,operator]
        clock.advance(300)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.get(first.job_id).status is JobStatus.SUBMITTED  # type: ignore[union-attr]

    storage.add(BUCKET, "uploads/second.jpg", image_bytes(), etag="e2")
    second = accept_upload(
        Upload(bucket=BUCKET, key="uploads/second.jpg", etag="e2", sequencer="02"), runtime, owner="s"
    )
    assert second.outcome is JobStatus.WAITING, "MaxInFlight=1, yet a second task was sent while the first is live"


def test_an_archived_image_reads_as_archived_not_as_an_unexpected_fault(stack: LocalStack) -> None:
    """Failed on 26248cd: GetObject on an object in an archive storage class answers 403 InvalidObjectState, which
    the adapter let escape as a ClientError: the job stayed WAITING and its image was read on every retry."""
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="uploads/old.jpg", Body=image_bytes(), StorageClass="DEEP_ARCHIVE")
    storage = ObjectStorage(s3)
    with pytest.raises(ObjectArchived) as raised:
        storage.read(stack.bucket, "uploads/old.jpg", max_bytes=10**6)
    assert "restore" in raised.value.message and raised.value.code == "IMAGE_ARCHIVED"


def test_the_current_object_of_a_key_is_its_newest_upload(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    first = s3.put_object(Bucket=stack.bucket, Key="uploads/cat.jpg", Body=b"one")["ETag"].strip('"')
    second = s3.put_object(Bucket=stack.bucket, Key="uploads/cat.jpg", Body=b"two")["ETag"].strip('"')
    storage = ObjectStorage(s3)
    current = storage.current(stack.bucket, "uploads/cat.jpg")
    assert current is not None and current.etag == second != first
    assert storage.current(stack.bucket, "uploads/none.jpg") is None


def test_a_rejected_reupload_keeps_the_older_uploads_paid_video_end_to_end(pipeline, sim) -> None:
    """Failed on 26248cd: the broken re-upload was REJECTED but still named as the key's newest upload, so the
    older job's finished, billed task was failed SUPERSEDED and its video stored nowhere."""
    sim.knobs.run_seconds = 2.0
    first = pipeline.submit(pipeline.upload("uploads/cat.jpg", image_bytes()))
    older = first["outcomes"][0]["job_id"]
    assert first["outcomes"][0]["outcome"] == "SUBMITTED"
    second = pipeline.submit(pipeline.upload("uploads/cat.jpg", b"this is not an image"))
    assert second["outcomes"][0]["outcome"] == "REJECTED"

    store = pipeline.runtime.store
    for _ in range(60):
        if store.get(older).status.is_terminal:
            break
        pipeline.poll(timeout_seconds=30)
        time.sleep(0.2)
    job = store.get(older)
    assert job.status is JobStatus.SUCCEEDED, job.error
    s3 = pipeline.s3
    sidecar = json.loads(s3.get_object(Bucket=job.outputs.bucket, Key=job.outputs.sidecar_key)["Body"].read())
    assert sidecar["job_id"] == older
    assert s3.head_object(Bucket=job.outputs.bucket, Key=job.outputs.video_key)["ContentLength"] > 0
