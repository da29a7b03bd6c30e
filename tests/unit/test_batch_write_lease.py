"""A batch writer sends nothing past its lease: the table's BatchItems stops sending rows, and retrying the ones
DynamoDB left unprocessed, once the writer's lease ran out; a write cut off so is taken over only after the grace."""

from __future__ import annotations

from typing import Any

import pytest

from seedance_pipeline.adapters.batch_items import BatchItems
from seedance_pipeline.errors import LeaseLost
from seedance_pipeline.logic import batch_intake
from seedance_pipeline.logic.batch_report import batch_job_ids
from seedance_pipeline.logic.batch_resume import resume_stalled_writes
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import WRITER_GRACE_SECONDS, Job, JobStatus, Upload
from seedance_pipeline.rules.keys import job_id_for
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeStore, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/shoot/leased.csv"
ROWS = 6


class ThrottledDynamoDB:
    """DynamoDB throttled (moto never throttles): BatchWriteItem leaves every item unprocessed, and each request
    takes `seconds` of the clock."""

    def __init__(self, clock: FakeClock, *, seconds: float = 0.0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.requests: list[str] = []

    def batch_write_item(self, RequestItems: Any) -> dict[str, Any]:
        self.requests.append("BatchWriteItem")
        self.clock.advance(self.seconds)
        return {"UnprocessedItems": RequestItems}

    def put_item(self, **_: Any) -> dict[str, Any]:
        self.requests.append("PutItem")
        self.clock.advance(self.seconds)
        return {}


def new_jobs(count: int) -> list[tuple[Job, str | None, float | None]]:
    return [
        (
            Job(
                job_id=f"row-{n}",
                status=JobStatus.WAITING,
                source_bucket=BUCKET,
                source_key=f"uploads/{n}.jpg",
                created_at=0.0,
                updated_at=0.0,
            ),
            "0",
            None,
        )
        for n in range(count)
    ]


def batch_items(client: ThrottledDynamoDB, clock: FakeClock) -> BatchItems:
    return BatchItems(
        "jobs",
        client,  # type: ignore[arg-type]
        job_item=lambda job, shard, expires: {"job_id": job.job_id, "due_shard": shard},
        lifetime_seconds=3600,
        sleep=clock.advance,
    )


def test_rows_left_unprocessed_are_not_retried_once_the_writers_lease_ran_out():
    clock = FakeClock()
    client = ThrottledDynamoDB(clock)
    until = clock() + 1.0
    with pytest.raises(LeaseLost):
        batch_items(client, clock).put_new_jobs(new_jobs(10), first_write=True, lease_left=lambda: until - clock())
    # Sent at 0, 0.05, 0.15, 0.35 and 0.75 s of the lease (the back-off doubles); the next try would be at 1.55 s.
    assert client.requests == ["BatchWriteItem"] * 5
    assert clock() < until + 1.0


def test_a_resumed_writes_conditional_puts_stop_at_the_writers_lease():
    clock = FakeClock()
    client = ThrottledDynamoDB(clock, seconds=1.0)  # each put takes a second
    until = clock() + 2.5
    with pytest.raises(LeaseLost):
        batch_items(client, clock).put_new_jobs(new_jobs(10), first_write=False, lease_left=lambda: until - clock())
    assert client.requests == ["PutItem"] * 3


class ChunkCutOffByTheLease(FakeStore):
    """The writer's second chunk is due to be sent after a request before it hung past the writer's lease."""

    clock: FakeClock | None = None

    def put_new_jobs(self, jobs: list[Any], *, first_write: bool, lease_left: Any) -> None:
        if self.clock is not None and jobs and jobs[0][0].batch and jobs[0][0].batch.row == 4:
            self.clock.advance(lease_left() + 1)
            self.clock = None
        super().put_new_jobs(jobs, first_write=first_write, lease_left=lease_left)


def test_a_write_cut_off_by_its_lease_is_taken_over_only_after_the_grace_and_every_row_is_sent_once(monkeypatch):
    monkeypatch.setattr(batch_intake, "PROGRESS_EVERY", 3)
    runtime, store, storage, provider = make_runtime()
    store = ChunkCutOffByTheLease(due_shards=store.due_shards)
    store.clock = runtime.clock
    runtime.store = store
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, ROWS + 1))).encode())
    upload = Upload(bucket=BUCKET, key=KEY, sequencer="00L1", etag="e1")
    assert accept_upload(upload, runtime, owner="writer").outcome == "WAITING"
    batch = present(store.get_batch(job_id_for(upload)))
    assert (batch.written, batch.writer_owner) == (3, "writer")
    assert store.get(batch_job_ids(batch)[3][2]) is None, "nothing sent past the lease"
    lease_until = present(batch.writer_until)
    assert lease_until < runtime.clock(), "the lease ran out, and the writer handed nothing over"
    runtime.clock.advance(lease_until + WRITER_GRACE_SECONDS - 1 - runtime.clock())
    assert resume_stalled_writes(runtime, owner="early", time_left=lambda: 50.0) == 0
    runtime.clock.advance(2)
    assert resume_stalled_writes(runtime, owner="poller", time_left=lambda: 50.0) == 1
    assert present(store.get_batch(batch.batch_id)).all_written
    for _ in range(40):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(job.status.is_terminal and not job.finalize_pending for job in store.jobs()):
            break
        runtime.clock.advance(30)
    prompts = sorted(str(body.get("prompt")) for body in provider.submissions)
    assert prompts == sorted(f"row {n}" for n in range(1, ROWS + 1)), "every row sent exactly once"
