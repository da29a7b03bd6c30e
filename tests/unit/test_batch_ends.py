"""A batch's two ends on the fakes: `Batch Completed` is published at least once whatever dies between the completion
claim and the publish, and a write of the rows that died half-way is finished by the poller, every row once."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from typing import Any

import pytest

from seedance_pipeline.logic import batch_intake
from seedance_pipeline.logic.batch_report import BatchPublishPending, batch_job_ids, close_batch
from seedance_pipeline.logic.batch_resume import resume_stalled_writes
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import WRITER_GRACE_SECONDS, JobStatus, Upload, iso_time
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


# --- a write of the rows that stopped half-way: finished by the poller --------------------------------------------

ROWS = 8


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_intake, "PROGRESS_EVERY", 3)


def half_written(runtime: FakeRuntime, store: FakeStore, storage: Any) -> str:
    """A batch of ROWS rows whose submit function died in its second chunk, after one row of it (3 recorded, 4
    written); the event's retry came at once and found the dead writer's lease live."""
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, rows_file(ROWS))
    store.crash_after_jobs = 4
    with pytest.raises(RuntimeError):
        accept_upload(batch_upload(), runtime, owner="dies")
    store.crash_after_jobs = None
    batch_id = next(iter(store.batches))
    assert present(store.get_batch(batch_id)).written == 3 and len(store.jobs()) == 4
    assert accept_upload(batch_upload(), runtime, owner="retry").outcome == "DUPLICATE"
    return batch_id


def poll_until_completed(runtime: FakeRuntime, store: FakeStore, batch_id: str, *, rounds: int = 80) -> None:
    for _ in range(rounds):
        poll(runtime)
        batch = present(store.get_batch(batch_id))
        if batch.completed_at is not None and all(not j.finalize_pending for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError(f"the batch never completed: {present(store.get_batch(batch_id))}")


def row_writes(store: FakeStore) -> Counter[str]:
    return Counter(op.removeprefix("put_new_job ") for op in store.operations if op.startswith("put_new_job "))


def report_lines(storage: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in storage.uploads[(BUCKET, REPORT)].decode().splitlines()]


def test_a_crash_after_half_the_rows_and_an_early_duplicate_are_finished_by_the_poller_every_row_once(small_chunks):
    runtime, store, storage, provider = make_runtime()
    batch_id = half_written(runtime, store, storage)
    poll_until_completed(runtime, store, batch_id)
    batch = present(store.get_batch(batch_id))
    ids = [job_id for _, _, job_id in batch_job_ids(batch)]
    assert batch.all_written and batch.written == ROWS
    assert row_writes(store) == Counter(ids), "every row's job written exactly once"
    prompts = sorted(str(body.get("prompt")) for body in provider.submissions)
    assert prompts == sorted(f"row {n}" for n in range(1, ROWS + 1)), "every row sent exactly once"
    assert [(line["id"], line["status"]) for line in report_lines(storage)] == [
        (str(n), "SUCCEEDED") for n in range(1, ROWS + 1)
    ]
    assert len(runtime.events.batches) == 1


def test_a_resumed_write_never_overwrites_a_row_the_poller_already_moved_on(small_chunks):
    runtime, store, storage, provider = make_runtime()
    batch_id = half_written(runtime, store, storage)
    fourth = batch_job_ids(present(store.get_batch(batch_id)))[3][2]  # written by the writer that died
    poll(runtime)  # the rows written so far are sent; the dead writer's lease still runs
    sent = store.job(fourth)
    assert sent.status is not JobStatus.WAITING and sent.task_id is not None
    runtime.clock.advance(runtime.settings.claim_lease_seconds + WRITER_GRACE_SECONDS + 1)
    poll(runtime)  # resumes the write
    assert present(store.get_batch(batch_id)).all_written
    assert store.job(fourth).status is not JobStatus.WAITING and store.job(fourth).task_id == sent.task_id
    assert row_writes(store)[fourth] == 1
    poll_until_completed(runtime, store, batch_id)
    assert [str(body.get("prompt")) for body in provider.submissions].count("row 4") == 1


def test_two_pollers_at_once_resume_a_stalled_write_once(small_chunks):
    runtime, store, storage, provider = make_runtime()
    batch_id = half_written(runtime, store, storage)
    runtime.clock.advance(runtime.settings.claim_lease_seconds + WRITER_GRACE_SECONDS + 1)
    real_put = store.put_new_jobs
    other: list[int] = []

    def another_poller_meanwhile(jobs: Any, *, first_write: bool, lease_left: Any) -> None:
        if not other:
            other.append(resume_stalled_writes(runtime, owner="poller-b", time_left=lambda: 50.0))
        real_put(jobs, first_write=first_write, lease_left=lease_left)

    store.put_new_jobs = another_poller_meanwhile  # type: ignore[method-assign]
    assert resume_stalled_writes(runtime, owner="poller-a", time_left=lambda: 50.0) == 1
    assert other == [0], "the second poller found the write taken"
    store.put_new_jobs = real_put  # type: ignore[method-assign]
    batch = present(store.get_batch(batch_id))
    assert batch.all_written and row_writes(store) == Counter(job_id for _, _, job_id in batch_job_ids(batch))
    assert resume_stalled_writes(runtime, owner="poller-c", time_left=lambda: 50.0) == 0


def test_a_batch_file_changed_before_the_resume_ends_the_unwritten_rows_rejected_and_the_batch_completes(
    small_chunks,
):
    runtime, store, storage, provider = make_runtime()
    batch_id = half_written(runtime, store, storage)
    storage.add(BUCKET, KEY, rows_file(2), etag="e2")  # overwritten: the announced version is gone
    runtime.clock.advance(runtime.settings.claim_lease_seconds + WRITER_GRACE_SECONDS + 1)
    poll_until_completed(runtime, store, batch_id)
    lines = report_lines(storage)
    assert [line["status"] for line in lines] == ["SUCCEEDED"] * 4 + ["REJECTED"] * 4
    assert all("changed or is gone" in line["reason"] and "upload it again" in line["reason"] for line in lines[4:])
    assert lines[5]["reason"].startswith("row 6: ")
    assert len(provider.submissions) == 4 and len(runtime.events.batches) == 1


def test_a_writer_short_of_time_stops_between_chunks_and_the_poller_writes_the_rest_at_once(small_chunks):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, rows_file(ROWS))
    seconds_left = iter([100.0, 10.0])
    runtime.time_left = lambda: next(seconds_left, 10.0)
    outcome = accept_upload(batch_upload(), runtime, owner="s")
    assert outcome.outcome == "WAITING"
    batch = present(store.get_batch(present(outcome.job_id)))
    # Alive and writing no more: its lease is recorded as ended a grace ago, so the takeover need not wait.
    assert (batch.written, batch.all_written) == (3, False)
    assert batch.writer_until == runtime.clock() - WRITER_GRACE_SECONDS
    runtime.time_left = None
    runtime.clock.advance(1)
    poll(runtime)
    assert present(store.get_batch(batch.batch_id)).all_written, "handed over: no lease to wait for"
    poll_until_completed(runtime, store, batch.batch_id)
    assert len(provider.submissions) == ROWS
