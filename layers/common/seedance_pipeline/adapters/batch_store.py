"""The job store's batch methods (JobStorePort's batch part), each handed to the table's BatchItems (batch_items.py):
a mixin, so JobStore stays one class for the port and its module stays about jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from seedance_pipeline.adapters.batch_items import BatchItems
from seedance_pipeline.models import Batch, Job


class BatchMethods:
    _batches: BatchItems

    def create_batch(self, batch: Batch) -> bool:
        """Claim a batch upload once: False when its record exists (a duplicate delivery, or a resumed write)."""
        return self._batches.create_batch(batch)

    def get_batch(self, batch_id: str) -> Batch | None:
        return self._batches.get_batch(batch_id)

    def take_batch_writer(self, batch_id: str, *, owner: str, now: float, lease_seconds: float) -> Batch | None:
        """Take over writing a batch's rows whose writer's lease ran out before every row was written."""
        return self._batches.take_batch_writer(batch_id, owner=owner, now=now, lease_seconds=lease_seconds)

    def record_batch_progress(
        self, batch_id: str, *, owner: str, written: int, all_written: bool, writer_until: float
    ) -> bool:
        return self._batches.record_batch_progress(
            batch_id, owner=owner, written=written, all_written=all_written, writer_until=writer_until
        )

    def stalled_batch_writes(self, now: float) -> list[str]:
        return self._batches.stalled_batch_writes(now)

    def put_new_jobs(
        self, jobs: list[tuple[Job, str | None, float | None]], *, first_write: bool, lease_left: Callable[[], float]
    ) -> None:
        """Write new jobs (job, due shard, expiry) in bulk; `first_write` False never overwrites an existing one.
        Nothing is sent once `lease_left()` (the writer's lease, in seconds) is not positive: LeaseLost."""
        self._batches.put_new_jobs(jobs, first_write=first_write, lease_left=lease_left)

    def save_counting_batch(
        self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None
    ) -> int | None:
        return self._batches.save_counting_batch(job, owner=owner, due_shard=due_shard, expires_at=expires_at)

    def complete_batch(
        self, batch_id: str, *, now: float, counts: dict[str, int], billed_tokens: int, publish_until: float
    ) -> bool:
        return self._batches.complete_batch(
            batch_id, now=now, counts=counts, billed_tokens=billed_tokens, publish_until=publish_until
        )

    def take_batch_publisher(self, batch_id: str, *, now: float, lease_seconds: float) -> Batch | None:
        return self._batches.take_batch_publisher(batch_id, now=now, lease_seconds=lease_seconds)

    def clear_batch_publish(self, batch_id: str, *, publish_until: float) -> bool:
        return self._batches.clear_batch_publish(batch_id, publish_until=publish_until)

    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        return self._batches.get_jobs(job_ids)

    def iter_batches(self) -> Iterator[Batch]:
        return self._batches.iter_batches()
