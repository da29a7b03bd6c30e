"""A job recorded SUCCEEDED from its sidecar (an earlier delivery switched it, then died before recording the job)
ends like any other delivered job: its slot goes back, one SUCCEEDED event, and one DeliveriesRecovered."""

from __future__ import annotations

import pytest

from seedance_pipeline.errors import KmsAccessDenied, LeaseLost, ProviderRejected
from seedance_pipeline.logic import delivery_attempts
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.observability import MetricName
from tests.support.fakes import DEFAULT_DUE_SHARDS, FakeProvider, FakeRuntime, FakeStore, make_runtime
from tests.support.switch_crashes import SwitchRacedStorage, delivered_then_died


class _LosesTheFirstSuccessSave(FakeStore):
    """Another worker took the lease just before this one recorded the job SUCCEEDED (once)."""

    refuse = False

    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None:
        if self.refuse and job.status is JobStatus.SUCCEEDED:
            self.refuse = False
            raise LeaseLost(job.job_id)
        super().save(job, owner=owner, due_shard=due_shard, expires_at=expires_at)


def _switched_then_died(store: FakeStore) -> tuple[FakeRuntime, FakeStore, str, FakeProvider]:
    storage = SwitchRacedStorage()
    runtime, store, _, provider = make_runtime(storage=storage, store=store, max_in_flight=1)
    job_id = delivered_then_died(runtime, storage)
    assert not store.job(job_id).status.is_terminal
    provider.get_error = ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound")
    return runtime, store, job_id, provider


def _poll_until_quiet(runtime: FakeRuntime) -> None:
    for _ in range(10):
        runtime.clock.advance(400)  # past any dead invocation's lease
        run_poll(runtime, owner="p", time_left=lambda: 300.0)


def test_a_job_recorded_from_its_sidecar_gives_its_slot_back_and_publishes_one_succeeded_event() -> None:
    runtime, store, job_id, _ = _switched_then_died(FakeStore())
    assert store.slots, "the dead delivery held the job's slot"
    _poll_until_quiet(runtime)

    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED and not job.finalize_pending
    assert not store.slots
    published = [j for j in runtime.events.published if j.job_id == job_id]
    assert [j.status for j in published] == [JobStatus.SUCCEEDED]
    assert published[0].outputs is not None and published[0].outputs == job.outputs


def test_a_recovery_whose_record_is_lost_to_another_worker_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[str] = []
    real_count = delivery_attempts.count

    def count(name: str, value: float = 1, *args: object) -> None:
        counted.append(name)
        real_count(name, value)

    monkeypatch.setattr(delivery_attempts, "count", count)
    store = _LosesTheFirstSuccessSave(due_shards=DEFAULT_DUE_SHARDS)
    runtime, _, job_id, _ = _switched_then_died(store)
    store.refuse = True
    _poll_until_quiet(runtime)

    assert store.job(job_id).status is JobStatus.SUCCEEDED and not store.refuse
    assert counted.count(MetricName.DELIVERIES_RECOVERED) == 1, counted


def test_a_switched_delivery_whose_redeliveries_the_kms_key_refuses_is_recorded_succeeded() -> None:
    """The output bucket's key stops allowing writes after a delivery switched the sidecar and died: the paid video
    is stored and named, so the give-up a day later records the job from its sidecar, not FAILED."""
    runtime, store, job_id, provider = _switched_then_died(FakeStore())
    assert isinstance(runtime.storage, SwitchRacedStorage)
    provider.get_error = None  # the provider still answers: only the key refuses
    runtime.storage.upload_fault = KmsAccessDenied("s3://in-bucket/videos/c.jpg.mp4 cannot be written: AccessDenied")
    for _ in range(100):  # every 15 minutes for about a day, then given up
        runtime.clock.advance(15 * 60)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)

    job = store.job(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
