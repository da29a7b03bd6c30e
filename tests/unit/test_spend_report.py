"""`seedance-pipeline spend` sums: tokens by model and period, priced with the list prices."""

from __future__ import annotations

from datetime import UTC, datetime

from seedance_local.spend_report import spend_report
from seedance_pipeline.models import Job, JobStatus, VideoRequest
from tests.support.fakes import FakeStore

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC).timestamp()
YESTERDAY = NOW - 86400
LAST_MONTH = datetime(2026, 12, 20, tzinfo=UTC).timestamp()
PRO = "doubao-seedance-1-0-pro-250528"


def _job(job_id: str, model: str, at: float, status: JobStatus, estimated: int, billed: int | None = None) -> Job:
    request = VideoRequest(
        prompt="p", model=model, resolution="480p", ratio="16:9", duration=5, watermark=False, camerafixed=False,
        return_last_frame=False, generate_audio=False,
    )  # fmt: skip
    return Job(
        job_id=job_id, status=status, source_bucket="b", source_key=f"uploads/{job_id}.png", request=request,
        created_at=at, updated_at=at, submitted_at=at, finished_at=at + 60 if status.is_terminal else None,
        estimated_tokens=estimated, billed_tokens=billed,
    )  # fmt: skip


def _store(*jobs: Job) -> FakeStore:
    store = FakeStore()
    for job in jobs:
        store.put_unconditionally(job, due_shard=None)
    return store


def _rows(report, period):
    (found,) = [p for p in report.periods if p.name == period]
    return {row.model: row for row in found.models}


def test_billed_tokens_are_priced_at_the_list_price_per_million():
    store = _store(_job("a", PRO, NOW, JobStatus.SUCCEEDED, 104_000, billed=100_000))
    row = _rows(spend_report(store, now=NOW), "today")[PRO]
    assert (row.jobs_sent, row.estimated_tokens, row.billed_tokens, row.charged_tokens) == (
        1,
        104_000,
        100_000,
        100_000,
    )
    assert (row.currency, row.price_per_million, row.estimated_cost) == ("CNY", 15.0, 1.5)


def test_a_byteplus_id_is_priced_in_usd_and_the_currency_can_be_chosen():
    store = _store(_job("a", "seedance-1-0-pro-250528", NOW, JobStatus.SUCCEEDED, 1, billed=1_000_000))
    assert _rows(spend_report(store, now=NOW), "today")["seedance-1-0-pro-250528"].estimated_cost == 2.5
    in_cny = _rows(spend_report(store, now=NOW, currency="CNY"), "today")["seedance-1-0-pro-250528"]
    assert (in_cny.currency, in_cny.estimated_cost) == ("CNY", 15.0)


def test_a_model_without_a_price_is_shown_as_tokens_only():
    fast_in_usd = "doubao-seedance-1-0-pro-fast-251015"
    store = _store(
        _job("a", "doubao-seedance-2-0-260128", NOW, JobStatus.SUCCEEDED, 5, billed=7),
        _job("b", fast_in_usd, NOW, JobStatus.SUCCEEDED, 5, billed=7),
    )
    rows = _rows(spend_report(store, now=NOW, currency="USD"), "today")
    for model in ("doubao-seedance-2-0-260128", fast_in_usd):
        assert (rows[model].charged_tokens, rows[model].currency, rows[model].estimated_cost) == (7, None, None)


def test_only_successes_are_charged_and_a_success_without_usage_is_charged_its_estimate():
    store = _store(
        _job("a", PRO, NOW, JobStatus.FAILED, 50_000),
        _job("b", PRO, NOW, JobStatus.SUCCEEDED, 60_000),  # the provider reported no usage
        _job("c", PRO, NOW, JobStatus.RUNNING, 70_000),
    )
    row = _rows(spend_report(store, now=NOW), "today")[PRO]
    assert (row.jobs_sent, row.estimated_tokens) == (3, 180_000)
    assert (row.jobs_succeeded, row.billed_tokens, row.succeeded_without_usage, row.charged_tokens) == (1, 0, 1, 60_000)


def test_today_and_this_month_are_utc_periods():
    store = _store(
        _job("a", PRO, NOW, JobStatus.SUCCEEDED, 1, billed=10),
        _job("b", PRO, YESTERDAY, JobStatus.SUCCEEDED, 1, billed=20),
        _job("c", PRO, LAST_MONTH, JobStatus.SUCCEEDED, 1, billed=40),
    )
    report = spend_report(store, now=NOW)
    assert _rows(report, "today")[PRO].billed_tokens == 10
    assert _rows(report, "month")[PRO].billed_tokens == 30


def test_the_report_carries_todays_budget_counter():
    store = _store()
    store.commit_tokens("2027-01-15", 1234, budget=10_000)
    report = spend_report(store, now=NOW)
    assert (report.budget_day, report.budget_committed_tokens) == ("2027-01-15", 1234)
    assert report.document()["periods"] == [
        {"name": "today", "start": "2027-01-15T00:00:00+00:00", "models": []},
        {"name": "month", "start": "2027-01-01T00:00:00+00:00", "models": []},
    ]
