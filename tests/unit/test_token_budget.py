"""Spend you can see (token estimates, billed tokens, their metrics) and spend you can cap (DailyTokenBudget)."""

import json
import threading
from datetime import UTC, datetime

import pytest

from seedance_pipeline.adapters.job_events import event_detail
from seedance_pipeline.errors import ProviderRejected, ProviderThrottled, SubmissionUncertain
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import Blocked, accept_upload, try_submit
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.rules import token_estimate
from seedance_pipeline.rules.token_estimate import billed_tokens, estimate_tokens, next_utc_day_at, utc_day
from seedance_pipeline.settings import Settings
from seedance_simulator import dimensions
from tests.support.expect import present
from tests.support.fakes import GATEWAY_URL, FakeClock, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
MODEL = "doubao-seedance-1-0-pro-250528"
# A 640x480 upload at 480p, adaptive ratio: the 4:3 size, 736 x 544 x 121 frames / 1024.
ESTIMATE_480P_4_3 = 47_311


def upload(runtime, storage, n, metadata=None):
    key = f"uploads/img-{n:03d}.jpg"
    storage.add(BUCKET, key, image_bytes(), {"resolution": "480p", **(metadata or {})})
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer=f"{n:04X}", etag="e1"), runtime, owner="s")


def poll(runtime):
    return run_poll(runtime, owner="p", time_left=lambda: 300.0)


def emitted(out: str, name: str) -> list[tuple[float, str | None]]:
    """(value, model dimension) of every EMF record of metric `name` printed so far."""
    found = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if name in record and "_aws" in record:
            value = record[name]
            found.append((value[0] if isinstance(value, list) else value, record.get("model")))
    return found


# --- the estimate ----------------------------------------------------------------------------------------------


def test_the_estimate_reproduces_the_providers_sample_and_counts_24_frames_a_second_plus_one():
    assert estimate_tokens("480p", "16:9", 5) == 49_005  # 864 x 480 x 121 / 1024, the gateway's own example
    assert estimate_tokens("720p", "16:9", 5) == 103_818  # 1248 x 704 x 121 / 1024
    assert estimate_tokens("1080p", "9:16", 10) == 491_640  # 1088 x 1920 x 241 / 1024
    assert estimate_tokens("480p", "4:3", 5) == ESTIMATE_480P_4_3


@pytest.mark.parametrize("resolution", dimensions.RESOLUTIONS)
@pytest.mark.parametrize("ratio", dimensions.FIXED_RATIOS)
def test_every_table_size_matches_the_simulators_independent_table(resolution, ratio):
    assert token_estimate.output_size(resolution, ratio) == dimensions.fixed_size(resolution, ratio)


@pytest.mark.parametrize(
    ("image", "ratio"),
    [((640, 480), "4:3"), ((1000, 1000), "1:1"), ((480, 640), "3:4"), ((1920, 1080), "16:9"), ((2400, 1000), "21:9")],
)
def test_adaptive_estimates_the_nearest_listed_ratio_of_the_image(image, ratio):
    # keep_ratio, and images between two ratios: tests/unit/test_token_estimate_bound.py.
    assert token_estimate.output_size("720p", "adaptive", image) == token_estimate.OUTPUT_SIZES["720p"][ratio]


def test_without_an_image_size_adaptive_estimates_the_largest_size_of_the_resolution():
    assert estimate_tokens("480p", "adaptive", 5) == 49_005  # 16:9 is the largest at 480p
    assert estimate_tokens("720p", "adaptive", 5) == estimate_tokens("720p", "21:9", 5)  # 21:9 at 720p
    assert estimate_tokens("480p", "keep_ratio", 5) >= 49_005


def test_billed_tokens_read_total_then_completion_tokens():
    assert billed_tokens({"completion_tokens": 100, "total_tokens": 120}) == 120
    assert billed_tokens({"completion_tokens": 100}) == 100
    assert billed_tokens({"prompt_tokens": 3}) is None and billed_tokens(None) is None and billed_tokens({}) is None


def test_utc_days_and_their_ends():
    start = datetime(2027, 1, 15, 23, 59, 59, tzinfo=UTC).timestamp()
    assert utc_day(start) == "2027-01-15" and utc_day(start + 1) == "2027-01-16"
    assert next_utc_day_at(start) == start + 1


def test_an_empty_budget_parameter_means_no_cap():
    assert Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, daily_token_budget="").daily_token_budget == 0


# --- spend you can see -------------------------------------------------------------------------------------------


def test_a_job_records_its_estimate_before_the_post_and_its_billed_tokens_after_success(capsys):
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "SUCCEEDED", "usage": {"completion_tokens": 47_000, "total_tokens": 47_000}}
    outcome = upload(runtime, storage, 1)
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.SUBMITTED and job.estimated_tokens == ESTIMATE_480P_4_3
    assert emitted(capsys.readouterr().out, "TokensSubmitted") == [(ESTIMATE_480P_4_3, MODEL)]

    runtime.clock.advance(60)
    poll(runtime)
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.SUCCEEDED and job.billed_tokens == 47_000
    assert emitted(capsys.readouterr().out, "TokensBilled") == [(47_000, MODEL)]
    sidecar = json.loads(storage.uploads[(BUCKET, "videos/img-001.jpg.json")])
    assert sidecar["tokens"] == {"estimated": ESTIMATE_480P_4_3, "billed": 47_000}
    assert sidecar["provider"]["usage"] == {"completion_tokens": 47_000, "total_tokens": 47_000}
    assert event_detail(runtime.events.published[-1])["tokens"] == {"estimated": ESTIMATE_480P_4_3, "billed": 47_000}


def test_a_provider_without_usage_leaves_billed_tokens_unknown_and_emits_no_billed_metric(capsys):
    runtime, store, storage, provider = make_runtime()
    outcome = upload(runtime, storage, 1)
    runtime.clock.advance(60)
    poll(runtime)
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.SUCCEEDED and job.billed_tokens is None
    assert emitted(capsys.readouterr().out, "TokensBilled") == []
    assert event_detail(runtime.events.published[-1])["tokens"] == {"estimated": ESTIMATE_480P_4_3, "billed": None}


# --- spend you can cap -------------------------------------------------------------------------------------------


def test_jobs_past_the_daily_budget_wait_and_resume_on_the_next_utc_day_nothing_lost():
    clock = FakeClock()  # 2027-01-15 08:00 UTC
    runtime, store, storage, provider = make_runtime(clock, daily_token_budget=ESTIMATE_480P_4_3 * 2 + 10)
    outcomes = [upload(runtime, storage, n) for n in range(5)]
    assert [o.outcome for o in outcomes] == ["SUBMITTED", "SUBMITTED", "WAITING", "WAITING", "WAITING"]
    held = store.job(outcomes[2].job_id)
    assert present(held.last_error).code == "DAILY_BUDGET_REACHED"
    assert present(held.last_error).message.startswith("daily budget reached")
    assert store.committed == {"2027-01-15": ESTIMATE_480P_4_3 * 2}
    assert store.slots == {outcomes[0].job_id, outcomes[1].job_id}  # the held jobs gave their slots back

    # The rest of the day: the first two finish, the others keep waiting (never past the budget, never failed).
    for _ in range(12 * 15):
        clock.advance(300)
        poll(runtime)
        if utc_day(clock()) != "2027-01-15":
            break
        assert len(provider.submissions) == 2
        assert store.committed["2027-01-15"] <= runtime.settings.daily_token_budget
    assert utc_day(clock()) == "2027-01-16"
    poll_until_settled(runtime, store)
    assert [store.job(o.job_id).status for o in outcomes] == [JobStatus.SUCCEEDED] * 5
    assert len(provider.submissions) == 5  # each job sent once
    # Two a day: the fifth job went on the third day.
    assert store.committed == {
        "2027-01-15": ESTIMATE_480P_4_3 * 2, "2027-01-16": ESTIMATE_480P_4_3 * 2, "2027-01-17": ESTIMATE_480P_4_3,
    }  # fmt: skip


def poll_until_settled(runtime, store, *, limit=400):
    for _ in range(limit):
        poll(runtime)
        if all(j.status.is_terminal for j in store.jobs()):
            return
        runtime.clock.advance(300)
    raise AssertionError("jobs never reached a terminal status")


def test_a_held_job_outwaits_max_job_age_without_timing_out():
    runtime, store, storage, provider = make_runtime(daily_token_budget=ESTIMATE_480P_4_3, max_job_age_minutes=10)
    first, second = upload(runtime, storage, 1), upload(runtime, storage, 2)
    assert (first.outcome, second.outcome) == ("SUBMITTED", "WAITING")
    runtime.clock.advance(next_utc_day_at(runtime.clock()) - runtime.clock() + 5)  # 16 h later: the next UTC day
    poll_until_settled(runtime, store)
    assert store.job(second.job_id).status is JobStatus.SUCCEEDED


def test_a_job_queued_for_capacity_behind_the_budget_waits_for_the_budget_instead_of_timing_out():
    runtime, store, storage, provider = make_runtime(
        daily_token_budget=ESTIMATE_480P_4_3, max_job_age_minutes=10, max_in_flight=1
    )
    first, second = upload(runtime, storage, 1), upload(runtime, storage, 2)
    assert (first.outcome, second.outcome) == ("SUBMITTED", "WAITING")
    assert store.job(second.job_id).last_error is None  # held by capacity, not (yet) by the budget
    runtime.clock.advance(1800)  # past MaxJobAgeMinutes: the first job is done, and it spent today's budget
    poll(runtime)
    held = store.job(second.job_id)
    assert held.status is JobStatus.WAITING and present(held.last_error).code == "DAILY_BUDGET_REACHED"
    runtime.clock.advance(next_utc_day_at(runtime.clock()) - runtime.clock() + 5)
    poll_until_settled(runtime, store)
    assert store.job(second.job_id).status is JobStatus.SUCCEEDED


def test_a_raised_budget_lets_waiting_jobs_through_the_same_day():
    runtime, store, storage, provider = make_runtime(daily_token_budget=ESTIMATE_480P_4_3)
    upload(runtime, storage, 1)
    waiting = upload(runtime, storage, 2)
    assert waiting.outcome == "WAITING"
    runtime.settings = runtime.settings.model_copy(update={"daily_token_budget": ESTIMATE_480P_4_3 * 2})
    runtime.clock.advance(301)  # the held job's next look (BUDGET_RETRY_SECONDS), well before midnight
    poll(runtime)
    assert store.job(waiting.job_id).status is not JobStatus.WAITING and len(provider.submissions) == 2
    assert store.committed[utc_day(runtime.clock())] == ESTIMATE_480P_4_3 * 2


def test_a_held_job_stops_the_waiting_queue_like_no_capacity():
    runtime, store, storage, provider = make_runtime(daily_token_budget=ESTIMATE_480P_4_3)
    upload(runtime, storage, 1)
    waiting = upload(runtime, storage, 2)
    runtime.clock.advance(301)
    job = store.acquire_lease(store.job(waiting.job_id), owner="p", now=runtime.clock(), lease_seconds=60)
    attempt = try_submit(job, runtime, owner="p")
    # The poller stops the waiting queue on any Blocked reason: every job behind would meet the same budget.
    assert attempt.blocked is Blocked.DAILY_BUDGET and attempt.job.status is JobStatus.WAITING
    assert present(attempt.job.next_check_at) <= next_utc_day_at(runtime.clock()) + 1


def test_a_job_larger_than_the_whole_budget_waits_and_says_why():
    runtime, store, storage, provider = make_runtime(daily_token_budget=1000)
    outcome = upload(runtime, storage, 1)
    job = store.job(outcome.job_id)
    assert job.status is JobStatus.WAITING and provider.submissions == []
    assert "larger than the whole budget" in present(job.last_error).message


@pytest.mark.parametrize("error", [ProviderThrottled("429"), ProviderRejected("HTTP 400 InvalidParameter")])
def test_tokens_of_a_post_that_created_no_task_are_given_back(error):
    runtime, store, storage, provider = make_runtime(daily_token_budget=10**6)
    provider.submit_error = error
    upload(runtime, storage, 1)
    assert store.committed[utc_day(runtime.clock())] == 0


def test_tokens_of_an_uncertain_post_stay_committed():
    runtime, store, storage, provider = make_runtime(daily_token_budget=10**6)
    provider.submit_error = SubmissionUncertain("read timeout after sending")
    outcome = upload(runtime, storage, 1)
    assert store.job(outcome.job_id).status is JobStatus.FAILED
    assert store.committed[utc_day(runtime.clock())] == ESTIMATE_480P_4_3


def test_concurrent_submissions_never_overshoot_the_budget_and_every_job_is_kept():
    runtime, store, storage, provider = make_runtime(daily_token_budget=ESTIMATE_480P_4_3 * 5, max_in_flight=50)
    for n in range(20):
        storage.add(BUCKET, f"uploads/img-{n:03d}.jpg", image_bytes(), {"resolution": "480p"})
    outcomes = []

    def submit(n):
        key = f"uploads/img-{n:03d}.jpg"
        outcomes.append(accept_upload(Upload(bucket=BUCKET, key=key, sequencer=f"{n:04X}"), runtime, owner=f"t{n}"))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(provider.submissions) == 5
    assert store.committed[utc_day(runtime.clock())] == ESTIMATE_480P_4_3 * 5
    assert sorted(o.outcome for o in outcomes) == ["SUBMITTED"] * 5 + ["WAITING"] * 15
    assert len(store.jobs()) == 20
