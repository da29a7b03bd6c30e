"""A status check that delivers nothing is recorded without a lease; only a delivery or a terminal outcome leases."""

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.models import DueJob, Job, JobStatus
from tests.support.fakes import FakeStore, make_runtime_with
from tests.unit.test_polling import poll_until_terminal, submitted


class LeaseCountingStore(FakeStore):
    def __init__(self, due_shards: int) -> None:
        super().__init__(due_shards)
        self.leases: list[str] = []

    def acquire_lease(self, job: Job | DueJob, *, owner: str, now: float, lease_seconds: float) -> Job:
        self.leases.append(job.job_id)
        return super().acquire_lease(job, owner=owner, now=now, lease_seconds=lease_seconds)


def test_checks_that_find_the_task_still_running_take_no_lease():
    runtime, store, storage, provider = make_runtime_with(LeaseCountingStore)
    provider.ready_after = 600.0
    job_id = submitted(runtime, storage)
    for _ in range(5):
        runtime.clock.advance(60)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    job = store.job(job_id)
    assert job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and job.checks >= 3
    assert store.leases == []
    assert job.lease_owner is None


def test_the_check_that_finds_the_video_ready_leases_once_and_asks_the_provider_once():
    runtime, store, storage, provider = make_runtime_with(LeaseCountingStore)
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert store.leases == [job_id]
    assert provider.gets == job.checks  # the answer read before the lease is not asked for again


def test_a_job_leased_by_another_poller_is_left_to_it():
    runtime, store, storage, provider = make_runtime_with(LeaseCountingStore)
    provider.ready_after = 600.0
    job_id = submitted(runtime, storage)
    runtime.clock.advance(60)
    (due,) = [j for s in range(store.due_shards) for j in store.due_jobs(str(s), runtime.clock())]
    store.acquire_lease(due, owner="other-poller", now=runtime.clock(), lease_seconds=300)
    report = run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert report.skipped_leased == 1
    assert store.job(job_id).checks == 0 and store.job(job_id).lease_owner == "other-poller"
