"""A hostile review of the batch writer's resume and of S3 metadata `takes`, on the fakes: each test is a hole found
(strict xfail until it is closed)."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

import pytest

from seedance_pipeline.errors import ErrorCode
from seedance_pipeline.logic import batch_intake
from seedance_pipeline.logic.batch_report import batch_job_ids
from seedance_pipeline.logic.batch_resume import resume_stalled_writes
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import WRITER_GRACE_SECONDS, JobStatus, Upload
from seedance_pipeline.rules.keys import job_id_for
from tests.support.expect import present
from tests.support.fakes import FakeStorage, FakeStore, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
IMAGE = "uploads/pets/kitten.jpg"
BATCH = "uploads/shoot/catalogue.csv"


def poll(runtime: Any) -> None:
    run_poll(runtime, owner="p", time_left=lambda: 300.0)


def drain(runtime: Any, store: FakeStore, *, rounds: int = 80) -> None:
    for _ in range(rounds):
        poll(runtime)
        if store.jobs() and all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("the jobs never drained")


class HeadFailsOnce(FakeStorage):
    """A transient HeadObject fault (throttling, a connection reset past boto's retries) on the next HEAD only."""

    fail_next = False

    def head(self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None) -> Any:
        if self.fail_next:
            self.fail_next = False
            self.heads += 1
            raise ConnectionError("HeadObject: connection reset")
        return super().head(bucket, key, version_id=version_id, etag=etag)


def test_a_duplicate_event_of_a_takes_image_whose_head_fails_is_a_duplicate_not_a_rejected_upload():
    storage = HeadFailsOnce()
    runtime, store, _, provider = make_runtime(storage=storage)
    storage.add(BUCKET, IMAGE, image_bytes(), {"takes": "3"})
    upload = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1")
    first = accept_upload(upload, runtime, owner="a")
    assert first.outcome == "WAITING" and store.get_batch(job_id_for(upload)) is not None
    storage.fail_next = True  # S3 delivers the event again; this time the HEAD meets a transient fault
    again = accept_upload(upload, runtime, owner="b")
    assert again.outcome == "DUPLICATE", (again.outcome, again.reason)
    assert store.get(job_id_for(upload)) is None, "no single-upload record beside the batch under the same id"
    drain(runtime, store)
    assert len(provider.submissions) == 3
    rejected = [e for e in runtime.events.published if e.status is JobStatus.REJECTED]
    assert rejected == [], "no Job Rejected event tells the uploader to upload the image again"


def test_a_takes_image_rejected_on_a_head_fault_is_not_made_by_its_duplicate_event():
    storage = HeadFailsOnce()
    runtime, store, _, provider = make_runtime(storage=storage)
    storage.add(BUCKET, IMAGE, image_bytes(), {"takes": "3"})
    upload = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1")
    storage.fail_next = True
    first = accept_upload(upload, runtime, owner="a")
    assert first.outcome is JobStatus.REJECTED and "upload the image again" in present(first.reason)
    again = accept_upload(upload, runtime, owner="b")  # S3 delivers the same event again; the HEAD works now
    assert again.outcome == "DUPLICATE", (again.outcome, again.reason)
    drain(runtime, store)
    assert provider.submissions == [], "the uploader was told to upload again: these takes would be paid twice"


def test_every_take_of_an_image_is_made_from_the_version_the_upload_announced():
    storage = FakeStorage()
    storage.versioned_buckets.add(BUCKET)
    runtime, store, _, provider = make_runtime(storage=storage, image_delivery="data-url")
    first_image = image_bytes(color=(10, 10, 10))
    version = storage.add(BUCKET, IMAGE, first_image, {"takes": "2"}, etag="e1")
    upload = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1", version_id=version)
    assert accept_upload(upload, runtime, owner="s").outcome == "WAITING"
    # The uploader replaces the picture (its own event is a batch of its own); the first upload's takes are queued.
    storage.add(BUCKET, IMAGE, image_bytes(color=(250, 250, 250)), {"takes": "2"}, etag="e2")
    drain(runtime, store)
    assert len(provider.submissions) == 2
    sent = [base64.b64decode(body["images"][0].split(",", 1)[1]) for body in provider.submissions]
    assert sent == [first_image, first_image], "each take of version 1 is made from version 1's image"


class RecordsPresigns(FakeStorage):
    """The fake's presigned URL names no version: this records which version each URL was signed for."""

    def __init__(self) -> None:
        super().__init__()
        self.presigned: list[tuple[str, str | None]] = []

    def presign_get(self, bucket: str, key: str, *, version_id: str | None, expires_in: int) -> str:
        self.presigned.append((key, version_id))
        return super().presign_get(bucket, key, version_id=version_id, expires_in=expires_in)


def test_every_take_of_an_image_sent_by_url_is_signed_for_the_version_the_upload_announced():
    storage = RecordsPresigns()
    storage.versioned_buckets.add(BUCKET)
    runtime, store, _, provider = make_runtime(storage=storage, image_delivery="presigned-url")
    version = storage.add(BUCKET, IMAGE, image_bytes(color=(10, 10, 10)), {"takes": "2"}, etag="e1")
    upload = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1", version_id=version)
    assert accept_upload(upload, runtime, owner="s").outcome == "WAITING"
    storage.add(BUCKET, IMAGE, image_bytes(color=(250, 250, 250)), {"takes": "2"}, etag="e2")
    drain(runtime, store)
    assert len(provider.submissions) == 2
    assert storage.presigned == [(IMAGE, version), (IMAGE, version)], "a URL of the key alone is the new picture"


def test_takes_of_an_image_overwritten_in_an_unversioned_bucket_are_rejected_naming_it_not_made_from_the_new_one():
    runtime, store, storage, provider = make_runtime(image_delivery="data-url")
    storage.add(BUCKET, IMAGE, image_bytes(color=(10, 10, 10)), {"takes": "2"}, etag="e1")
    first = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1")
    assert accept_upload(first, runtime, owner="s").outcome == "WAITING"
    # Overwritten before either take is sent: no version to go back to, and the ETag no longer matches.
    new_image = image_bytes(color=(250, 250, 250))
    storage.add(BUCKET, IMAGE, new_image, {"takes": "3"}, etag="e2")
    second = Upload(bucket=BUCKET, key=IMAGE, sequencer="00C2", etag="e2")
    assert accept_upload(second, runtime, owner="s").outcome == "WAITING"
    drain(runtime, store)

    sent = [base64.b64decode(body["images"][0].split(",", 1)[1]) for body in provider.submissions]
    assert sent == [new_image] * 3, "only the newer upload's own takes are made, each from its image"
    batch = store.get_batch(job_id_for(first))
    assert batch is not None
    first_takes = [store.get(job_id) for _, _, job_id in batch_job_ids(batch)]
    assert len(first_takes) == 2
    for take in first_takes:
        assert take is not None and take.status is JobStatus.REJECTED and take.error is not None
        assert take.error.code == ErrorCode.OBJECT_GONE
        assert IMAGE in take.error.message and "replaced" in take.error.message


# --- a writer outliving its lease ---------------------------------------------------------------------------------

ROWS = 6


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_intake, "PROGRESS_EVERY", 3)


def sent_in_time() -> float:
    return math.inf


class SlowChunk(FakeStore):
    """The submit function's BatchWriteItem for its second chunk is sent within the writer's lease but lands late:
    DynamoDB's client has botocore's default 60 s read timeout and retries (runtime.py gives the DynamoDB client no
    timeouts of its own), so one chunk can outlast the 30 s a writer keeps in hand. While it hangs, `meanwhile` runs
    (the lease runs out, pollers come by)."""

    meanwhile: Any = None

    def put_new_jobs(self, jobs: list[Any], *, first_write: bool, lease_left: Callable[[], float]) -> None:
        if self.meanwhile is not None and first_write and jobs and jobs[0][0].batch and jobs[0][0].batch.row == 4:
            assert lease_left() > 0, "the chunk is sent within the writer's lease"
            hook, self.meanwhile = self.meanwhile, None
            hook()
            lease_left = sent_in_time  # it lands, however late
        super().put_new_jobs(jobs, first_write=first_write, lease_left=lease_left)


def test_a_writer_whose_chunk_outlives_its_lease_never_writes_a_sent_row_back(small_chunks):
    runtime, store, storage, provider = make_runtime()
    store = SlowChunk(due_shards=store.due_shards)
    runtime.store = store
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(
        BUCKET, BATCH, ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, ROWS + 1))).encode()
    )
    upload = Upload(bucket=BUCKET, key=BATCH, sequencer="00B1", etag="e1")
    taken: list[int] = []

    def pollers_come_by_while_the_chunk_hangs() -> None:
        # From just past the writer's lease to just short of the longest its invocation can still be alive (the
        # grace after it), pollers come by (each poll runs a while, its waits on the fake clock).
        lease_until = present(present(store.get_batch(job_id_for(upload))).writer_until)
        for at in (lease_until + 1, lease_until + WRITER_GRACE_SECONDS / 2, lease_until + WRITER_GRACE_SECONDS - 60):
            runtime.clock.advance(max(0.0, at - runtime.clock()))
            taken.append(resume_stalled_writes(runtime, owner="poller", time_left=lambda: 50.0))
            poll(runtime)
        assert runtime.clock() < lease_until + WRITER_GRACE_SECONDS

    store.meanwhile = pollers_come_by_while_the_chunk_hangs
    assert accept_upload(upload, runtime, owner="slow-writer").outcome == "WAITING"
    drain(runtime, store)
    prompts = [str(body.get("prompt")) for body in provider.submissions]
    assert sorted(prompts) == sorted(f"row {n}" for n in range(1, ROWS + 1)), "every row sent exactly once"
    assert taken == [0, 0, 0], "no poller takes the write over while its writer may still be alive"
    assert present(store.get_batch(job_id_for(upload))).all_written


def test_takes_01_is_the_same_single_upload_as_takes_1():
    outcomes = []
    for value in ("1", "01"):
        runtime, store, storage, provider = make_runtime()
        storage.add(BUCKET, IMAGE, image_bytes(), {"takes": value})
        outcome = accept_upload(Upload(bucket=BUCKET, key=IMAGE, sequencer="00C1", etag="e1"), runtime, owner="s")
        drain(runtime, store)
        outcomes.append((outcome.outcome, sorted(key for _, key in storage.uploads), len(runtime.events.batches)))
    assert outcomes[1] == outcomes[0]


def test_an_event_retry_resuming_a_batch_whose_file_was_replaced_refuses_the_rows_left_without_raising(small_chunks):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(
        BUCKET, BATCH, ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, ROWS + 1))).encode()
    )
    upload = Upload(bucket=BUCKET, key=BATCH, sequencer="00B1", etag="e1")
    store.crash_after_jobs = 3
    with pytest.raises(RuntimeError):
        accept_upload(upload, runtime, owner="dies")
    store.crash_after_jobs = None
    storage.add(BUCKET, BATCH, b"image,prompt\r\na.jpg,other\r\n", etag="e2")  # replaced meanwhile
    runtime.clock.advance(runtime.settings.claim_lease_seconds + WRITER_GRACE_SECONDS + 1)
    outcome = accept_upload(upload, runtime, owner="event-retry")  # Lambda's retry, after the lease and grace ran out
    assert outcome.outcome in ("WAITING", "DUPLICATE")
    drain(runtime, store)  # the poller's resume ends the rows left, by name
    assert present(store.get_batch(job_id_for(upload))).all_written
    rows = [job for job in store.jobs() if job.batch is not None]
    assert len(rows) == ROWS, "every row of the file as accepted is a job, once"
    refused = [job for job in rows if job.status is JobStatus.REJECTED]
    assert len(refused) >= ROWS - 3 and all("changed or is gone" in present(job.error).message for job in refused)
