"""Three poll invocations at once finalize each job exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter

from seedance_pipeline.models import JobStatus
from tests.support.event_capture import EventCapture
from tests.support.images import image_bytes


def test_three_overlapping_pollers_finalize_each_job_exactly_once(pipeline, sim, stack):
    capture = EventCapture(stack)
    for n in range(12):
        pipeline.submit(pipeline.upload(f"uploads/overlap/{n}.jpg", image_bytes(), {"resolution": "480p"}))

    def poll() -> None:
        pipeline.poll(timeout_seconds=40)

    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:  # rounds of three simultaneous invocations, as overlapping ticks would run
        threads = [threading.Thread(target=poll) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if all(job.status.is_terminal for job in pipeline.jobs().values()):
            break

    jobs = pipeline.jobs()
    assert all(job.status is JobStatus.SUCCEEDED for job in jobs.values())
    events = capture.drain()
    finalized = Counter(e["detail"]["job_id"] for e in events if e["detail-type"] == "Video Generation Succeeded")
    assert set(finalized) == {job.job_id for job in jobs.values()}
    assert set(finalized.values()) == {1}, f"some job was finalized more than once: {finalized}"
    assert sim.counters.tasks_created == 12
    # One download per recorded delivery attempt: 12, unless a download failed under load and its retry is
    # on the record. Two pollers delivering the same job would download more often than the record says.
    attempts = {job.job_id: job.delivery_attempts for job in jobs.values()}
    assert sim.counters.download == sum(attempts.values()), f"downloads vs attempts recorded: {attempts}"
