"""What one poll invocation knows about the due jobs between its reads of the due index.

DynamoDB cost (bench figure 6). Reading the index before every pass cost half a read unit a shard each time a
job fell due, and recording every status check that found a task still running cost a write and two index writes
(its sort key, next_check_at, moves). So the invocation reads the jobs due within its window once every
READS_PER_WINDOW-th of it, keeps them here, and works from here in between:

- a job checked here and found still running is kept with its new check count and next check time, unrecorded,
  while that check falls within the window; its record is written once, when the invocation hands it over (the
  next check falls past the window, or the invocation ends): at most one check write a job a poll invocation;
- a job another worker wrote meanwhile is told apart by its record: the next read replaces what is kept here, and
  every write that follows is conditional on the record as read (record_check, acquire_lease), so a stale entry
  costs at most one status call, never a wrong transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seedance_pipeline.models import DueJob, Job, JobStatus

READS_PER_WINDOW = 4


@dataclass(frozen=True)
class Tracked:
    """A live job as this invocation knows it: `job` as last checked here, `recorded` as its record holds it.
    `provider_status` is set while a check made here is not yet recorded."""

    job: DueJob
    recorded: DueJob
    provider_status: str | None = None
    usage: dict[str, Any] | None = None

    @classmethod
    def as_read(cls, job: DueJob) -> Tracked:
        return cls(job=job, recorded=job)

    @property
    def unrecorded(self) -> bool:
        return self.provider_status is not None

    @property
    def due_at(self) -> float:
        return self.job.next_check_at if self.job.next_check_at is not None else 0.0


def due_view(job: Job) -> DueJob | None:
    """A record this invocation just wrote, as the due index now holds it (None once it left the index)."""
    if job.next_check_at is None or (job.status.is_terminal and not job.finalize_pending):
        return None
    return DueJob.model_validate(job.model_dump(include=set(DueJob.model_fields)))


def _same_record(a: DueJob, b: DueJob) -> bool:
    return (a.status, a.task_id, a.checks, a.next_check_at) == (b.status, b.task_id, b.checks, b.next_check_at)


class DueBook:
    def __init__(self) -> None:
        self._jobs: dict[str, Tracked] = {}

    def refresh(self, read: list[DueJob], *, complete: bool = True) -> None:
        """Take a fresh read of the index: it wins, except over a check made here on the record it still shows. A
        read cut short (MAX_JOBS_PER_PASS) may leave out a job checked here: that one is kept, not forgotten."""
        fresh: dict[str, Tracked] = {}
        if not complete:
            fresh.update((job_id, t) for job_id, t in self._jobs.items() if t.unrecorded)
        for job in read:
            kept = self._jobs.get(job.job_id)
            checked_here = kept is not None and kept.unrecorded and _same_record(kept.recorded, job)
            fresh[job.job_id] = kept if kept is not None and checked_here else Tracked.as_read(job)
        self._jobs = fresh

    def take_due(self, now: float, *, waiting_too: bool) -> list[Tracked]:
        due = [
            t for t in self._jobs.values() if t.due_at <= now and (waiting_too or t.job.status is not JobStatus.WAITING)
        ]
        for tracked in due:
            del self._jobs[tracked.job.job_id]
        return due

    def keep(self, tracked: Tracked) -> None:
        self._jobs[tracked.job.job_id] = tracked

    def note_written(self, job: Job) -> None:
        """A record this invocation wrote (a reschedule, a submission, a terminal save)."""
        view = due_view(job)
        if view is not None:
            self._jobs[job.job_id] = Tracked.as_read(view)

    def next_due(self, *, waiting_after: float) -> float | None:
        """The soonest time something kept here falls due; waiting jobs no sooner than `waiting_after`."""
        times = [
            max(t.due_at, waiting_after) if t.job.status is JobStatus.WAITING else t.due_at for t in self._jobs.values()
        ]
        return min(times) if times else None

    def has_waiting(self) -> bool:
        return any(t.job.status is JobStatus.WAITING for t in self._jobs.values())

    def unrecorded(self) -> list[Tracked]:
        return [t for t in self._jobs.values() if t.unrecorded]

    def __len__(self) -> int:
        return len(self._jobs)
