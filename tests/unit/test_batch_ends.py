"""A batch's two ends on the fakes: `Batch Completed` is published at least once whatever dies between the completion
claim and the publish, and a write of the rows that died half-way is finished by the poller, every row once."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

from seedance_pipeline.logic.batch_report import BatchPublishPending, close_batch
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload, iso_time
from tests.support.expect import present
from tests.support.fakes import FakeRuntime, FakeStore, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/shoot/catalogue.csv"
REPORT = "videos/shoot/catalogue.csv.report.jsonl"


class Died(BaseException):
    """The Lambda process dies here: no except-branch of ours sees it."""


def batch_upload(etag: str = "e1") -> Upload:
    return Upload(bucket=BUCKET, key=KEY, sequencer="00B1", etag=etag)


def rows_file(count: int) -> bytes:
    return ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, count + 1))).encode()


def accepted_batch(runtime: FakeRuntime, storage: Any, *, rows: int = 2) -> str:
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, rows_file(rows))
    return present(accept_upload(batch_upload(), runtime, owner="s").job_id)


def poll(runtime: FakeRuntime) -> None:
    run_poll(runtime, owner="p", time_left=lambda: 300.0)


def poll_for(runtime: FakeRuntime, store: FakeStore, *, rounds: int = 60, step: float = 30.0) -> None:
    """Poll as the schedule does, `step` seconds apart, until every job ended whole (or `rounds` ran out)."""
    for _ in range(rounds):
        with contextlib.suppress(Died):
            poll(runtime)
        if store.jobs() and all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            return
        runtime.clock.advance(step)


# --- `Batch Completed`: at least once ----------------------------------------------------------------------------


def test_a_put_events_fault_after_the_completion_claim_is_published_by_a_later_poll():
    runtime, store, storage, provider = make_runtime()
    batch_id = accepted_batch(runtime, storage)
    real_publish = runtime.events.publish_batch
    faults = {"left": 1}

    def put_events_fails_once(detail: dict[str, Any]) -> None:
        if faults["left"]:
            faults["left"] -= 1
            raise ConnectionError("PutEvents: connection reset")
        real_publish(detail)

    runtime.events.publish_batch = put_events_fails_once  # type: ignore[method-assign]
    poll_for(runtime, store, rounds=80)
    assert faults["left"] == 0, "the fault was never met"
    assert len(runtime.events.batches) == 1
    batch = present(store.get_batch(batch_id))
    event = runtime.events.batches[0]
    assert event["timings"]["completed_at"] == iso_time(batch.completed_at)
    assert event["counts"] == {"SUCCEEDED": 2} and event["report"]["jsonl"] == f"s3://{BUCKET}/{REPORT}"
    assert batch.publish_until is None, "the publish-pending mark is cleared once published"
    poll_for(runtime, store, rounds=3, step=400)
    assert len(runtime.events.batches) == 1


def test_a_crash_between_the_completion_claim_and_the_publish_is_published_once_by_a_later_poll():
    runtime, store, storage, provider = make_runtime()
    batch_id = accepted_batch(runtime, storage)
    real_publish = runtime.events.publish_batch
    crashes = {"left": 1}

    def dies_before_put_events(detail: dict[str, Any]) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise Died("the poll function was killed")
        real_publish(detail)

    runtime.events.publish_batch = dies_before_put_events  # type: ignore[method-assign]
    claimed_at = None
    for _ in range(80):
        try:
            poll(runtime)
        except Died:
            claimed_at = present(store.get_batch(batch_id)).completed_at
        if crashes["left"] == 0 and runtime.events.batches:
            break
        runtime.clock.advance(30)
    assert claimed_at is not None, "the crash was never met"
    poll_for(runtime, store, rounds=20, step=200)
    assert len(runtime.events.batches) == 1
    event = runtime.events.batches[0]
    assert event["timings"]["completed_at"] == iso_time(claimed_at), "the same event, not a new completion"
    assert event["counts"] == {"SUCCEEDED": 2}
    assert all(not j.finalize_pending for j in store.jobs())


def test_a_retry_within_the_publishers_lease_publishes_nothing_and_leaves_the_job_unfinished():
    runtime, store, storage, provider = make_runtime()
    batch_id = accepted_batch(runtime, storage, rows=1)
    seen: list[str] = []

    def meanwhile_another_finisher_closes(detail: dict[str, Any]) -> None:
        # A second close of the same batch while this one publishes: it must neither publish nor report done.
        with pytest.raises(BatchPublishPending):
            close_batch(batch_id, runtime)
        seen.append(detail["batch_id"])
        runtime.events.batches.append(detail)

    runtime.events.publish_batch = meanwhile_another_finisher_closes  # type: ignore[method-assign]
    poll_for(runtime, store)
    assert seen == [batch_id] and len(runtime.events.batches) == 1
    assert not close_batch(batch_id, runtime), "once published, a close is a no-op"


def test_concurrent_closes_of_a_finished_batch_publish_once():
    runtime, store, storage, provider = make_runtime()
    batch_id = accepted_batch(runtime, storage, rows=1)
    runtime.events.publish_batch = lambda detail: None  # type: ignore[method-assign]
    poll_for(runtime, store)  # every job ends; the close published into the void above
    store.batches[batch_id].update(completed_at=None, publish_until=None, counts=None, billed_tokens=None)
    published: list[dict[str, Any]] = []
    runtime.events.publish_batch = published.append  # type: ignore[method-assign, assignment]
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def close() -> None:
        start.wait()
        try:
            outcomes.append("published" if close_batch(batch_id, runtime) else "no-op")
        except BatchPublishPending:
            outcomes.append("pending")

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(published) == 1 and outcomes.count("published") == 1
