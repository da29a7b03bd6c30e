"""`jobs list` over the store's scan: newest first, cut to the limit, one status when asked."""

from __future__ import annotations

from seedance_local import operator_tools
from seedance_pipeline.models import Job, JobStatus
from tests.support.fakes import FakeStore


def _store_with(*jobs: tuple[str, JobStatus, float]) -> FakeStore:
    store = FakeStore()
    for job_id, status, created_at in jobs:
        job = Job(job_id=job_id, status=status, source_bucket="b", source_key=f"uploads/{job_id}.png",
                  created_at=created_at, updated_at=created_at, next_check_at=created_at)  # fmt: skip
        store.put_unconditionally(job, due_shard="0")
    return store


def test_list_is_newest_first_and_cut_to_the_limit():
    # Ids in the opposite order to their age, so the scan order (by id) is not already the answer.
    store = _store_with(*((f"{n:02x}", JobStatus.WAITING, 1000.0 + n) for n in range(7)))

    jobs = operator_tools.list_jobs(store, limit=3)

    assert [job.job_id for job in jobs] == ["06", "05", "04"]


def test_list_keeps_only_the_asked_status():
    store = _store_with(("aa", JobStatus.FAILED, 1.0), ("bb", JobStatus.SUCCEEDED, 2.0), ("cc", JobStatus.FAILED, 3.0))

    jobs = operator_tools.list_jobs(store, status=JobStatus.FAILED)

    assert [job.job_id for job in jobs] == ["cc", "aa"]
