"""Findings of the wave-3 hostile review that need the real JobStore (moto): xfail strict while open."""

from __future__ import annotations

from typing import cast

from seedance_local.local_stack import LocalStack
from seedance_pipeline.adapters.job_store import JobStore
from seedance_pipeline.adapters.slot_items import slot_item_id
from seedance_pipeline.errors import ProviderUnavailable
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
