"""A burst far above the provider's capacity ends with every job SUCCEEDED: the excess waits, nothing fails."""

from __future__ import annotations

import time

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

BURST = 200


def run_burst(pipeline, sim, *, max_in_flight: int, burst: int = BURST) -> dict:
    image = image_bytes(640, 360)
    started = time.monotonic()
    for n in range(burst):
        pipeline.submit(pipeline.upload(f"uploads/burst/{n:03d}.jpg", image, {"resolution": "480p"}))
    jobs = pipeline.run_until_terminal(timeout=400)
    figures = {
        "seconds": round(time.monotonic() - started, 1),
        "succeeded": sum(1 for j in jobs.values() if j.status is JobStatus.SUCCEEDED),
        "submissions": sim.counters.submit,
        "tasks": sim.counters.tasks_created,
        "http_429": sim.counters.rate_limited,
        "peak_running": sim.counters.peak_running,
        "max_in_flight": max_in_flight,
    }
    print(f"\nburst figures: {figures}")
    return figures


@pytest.fixture
def provider_limits(sim):
    sim.knobs.max_running = 10
    sim.knobs.max_queued = 120
    sim.knobs.run_seconds = 0.3
    return sim


def test_a_200_upload_burst_within_max_in_flight_all_succeeds_without_429s(make_pipeline, provider_limits):
    pipeline = make_pipeline(MAX_IN_FLIGHT="10")
    figures = run_burst(pipeline, provider_limits, max_in_flight=10)
    assert figures["succeeded"] == BURST
    assert figures["tasks"] == BURST  # one provider task per upload, no duplicates
    assert figures["http_429"] == 0
    assert pipeline.runtime.store.slot_holders() == set()  # every slot was given back


def test_a_burst_with_max_in_flight_above_the_provider_quota_still_loses_nothing(make_pipeline, sim):
    """MaxInFlight set far above what the provider takes (2 running + 8 queued): its 429s send jobs back to
    WAITING with the Retry-After it gave, and the poller submits them later. Nothing fails for quota. The provider
    drains 2 tasks a second, slower than even a loaded machine submits, so the burst always meets the quota."""
    sim.knobs.max_running, sim.knobs.max_queued, sim.knobs.run_seconds = 2, 8, 1.0
    pipeline = make_pipeline(MAX_IN_FLIGHT="200", HTTP_RETRIES="1", MAX_RETRY_AFTER_SECONDS="0.2")
    figures = run_burst(pipeline, sim, max_in_flight=200, burst=100)
    assert figures["succeeded"] == 100
    assert figures["tasks"] == 100
    assert figures["http_429"] > 0, "the scenario should have met the provider's quota"
