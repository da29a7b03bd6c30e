"""A poll invocation reads the due index a bounded number of times and records a still-running job once.

The invocation keeps what it read and what it checked (logic/due_book.py): these tests pin the cost (reads that
do not grow with the checks made, one check write a job an invocation) and that nothing is lost or overwritten
for it (the checks made reach the record; another worker's write wins; a crash leaves the record as it was).
"""

from collections.abc import Callable
from typing import Any

import pytest

from seedance_pipeline.logic.due_book import READS_PER_WINDOW
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.models import DueJob, Job, JobStatus
from tests.support.fakes import FakeStore, make_runtime_with
from tests.unit.test_polling import poll_until_terminal, submitted


class CountingStore(FakeStore):
    def __init__(self, due_shards: int) -> None:
        super().__init__(due_shards)
        self.reads = 0
        self.check_writes: list[str] = []

    def due_jobs(self, shard: str, now: float, *, page_size: int = 100) -> list[DueJob]:
        self.reads += 1
        return super().due_jobs(shard, now, page_size=page_size)

    def record_check(self, job: DueJob, **kwargs: Any) -> bool:
        self.check_writes.append(job.job_id)
        return super().record_check(job, **kwargs)


def test_a_job_checked_several_times_in_one_invocation_is_recorded_once_with_every_check():
    runtime, store, storage, provider = make_runtime_with(CountingStore)
    provider.ready_after = 600.0
    job_id = submitted(runtime, storage)
    runtime.clock.advance(40)  # its first check is due
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.gets >= 3, "the back-off brings several checks into one 50-second window"
    assert store.check_writes == [job_id]
    job = store.job(job_id)
    assert job.checks == provider.gets and job.status is JobStatus.RUNNING
    assert job.next_check_at is not None and job.next_check_at > runtime.clock()


def test_index_reads_per_invocation_do_not_grow_with_the_checks_it_makes():
    runtime, store, storage, provider = make_runtime_with(CountingStore)
    provider.ready_after = 600.0
    for n in range(10):  # MaxInFlight's worth
        submitted(runtime, storage, key=f"uploads/cat-{n}.jpg")
        runtime.clock.advance(3)  # staggered: ten different check times in the window
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.gets >= 20
    assert store.reads <= (READS_PER_WINDOW + 1) * store.due_shards
    assert len(store.check_writes) == 10


class AnotherWorkerRecordsFirst(CountingStore):
    """Once armed, the first time the invocation turns to the store for one job (to read it or to hand over its
    checks), another poller first records a check of its own on the record as it then stands: whatever this
    invocation hands over after that was read before that write."""

    def __init__(self, due_shards: int) -> None:
        super().__init__(due_shards)
        self.clock: Callable[[], float] = lambda: 0.0
        self.armed = False
        self.theirs: dict[str, Any] | None = None
        self.handed_over: list[tuple[int, int, bool]] = []  # (checks it was read with, checks then stored, written)

    def _another_worker_records(self, job_id: str) -> None:
        if not self.armed or self.theirs is not None:
            return
        (stored,) = [j for s in range(self.due_shards) for j in FakeStore.due_jobs(self, str(s), 10**12)]
        assert stored.job_id == job_id
        assert FakeStore.record_check(
            self, stored, status=JobStatus.RUNNING, provider_status="theirs", next_check_at=stored.next_check_at or 0,
            now=self.clock(),
        )  # fmt: skip
        self.theirs = self._stored(job_id).model_dump()

    def _stored(self, job_id: str) -> Job:
        return Job.model_validate(self.items[job_id]["job"])

    def get(self, job_id: str) -> Job | None:
        self._another_worker_records(job_id)
        return super().get(job_id)

    def record_check(self, job: DueJob, **kwargs: Any) -> bool:
        self._another_worker_records(job.job_id)
        stored_checks = self._stored(job.job_id).checks
        written = super().record_check(job, **kwargs)
        self.handed_over.append((job.checks, stored_checks, written))
        return written


def test_a_job_another_worker_wrote_meanwhile_keeps_that_workers_record():
    runtime, store, storage, provider = make_runtime_with(AnotherWorkerRecordsFirst)
    store.clock = runtime.clock
    provider.ready_after = 600.0
    job_id = submitted(runtime, storage)
    runtime.clock.advance(40)
    store.armed = True
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.gets >= 2 and store.theirs is not None
    # This invocation did hand over checks made on the record it read before theirs: a stale write, refused.
    stale = [(read, stored) for read, stored, written in store.handed_over if read != stored]
    assert stale, f"no stale hand-over was attempted: {store.handed_over}"
    assert not any(w for read, stored, w in store.handed_over if read != stored), (
        f"stale write went through: {store.handed_over}"
    )
    # Their record stands as they wrote it, field for field.
    assert store.job(job_id).model_dump() == store.theirs
    assert store.job(job_id).lease_owner is None


def test_an_invocation_that_dies_mid_window_leaves_the_record_as_it_was_and_the_next_one_checks_again():
    runtime, store, storage, provider = make_runtime_with(CountingStore)
    provider.ready_after = 600.0
    job_id = submitted(runtime, storage)
    runtime.clock.advance(40)
    before = store.job(job_id)
    calls = {"n": 0}
    real_sleep = runtime.sleep

    def sleep_then_die(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("the invocation was killed")
        real_sleep(seconds)

    runtime.sleep = sleep_then_die
    with pytest.raises(SystemExit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    after = store.job(job_id)
    # The hand-over ran on the way out (a `finally`), or nothing was written: never a half-written record.
    assert after.checks in (before.checks, provider.gets)
    runtime.sleep = real_sleep
    asked = provider.gets
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.gets > asked and store.job(job_id).checks == provider.gets


def test_waiting_jobs_left_behind_by_a_blocked_pass_are_tried_again_in_the_same_invocation():
    runtime, store, storage, provider = make_runtime_with(CountingStore, max_in_flight=1)
    provider.ready_after = 20.0
    first = submitted(runtime, storage, key="uploads/a.jpg")
    waiting = [submitted(runtime, storage, key=f"uploads/w{n}.jpg") for n in range(2)]
    assert [store.job(j).status for j in waiting] == [JobStatus.WAITING] * 2
    runtime.clock.advance(25)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    # The first finished in this window and its slot went to the oldest waiting job, which was then sent.
    assert store.job(first).status is JobStatus.SUCCEEDED
    assert store.job(waiting[0]).status is not JobStatus.WAITING
    poll_until_terminal(runtime, store)
    assert [store.job(j).status for j in waiting] == [JobStatus.SUCCEEDED] * 2
