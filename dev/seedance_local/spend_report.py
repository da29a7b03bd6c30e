"""`seedance-pipeline spend`: provider tokens and their estimated cost by model, today and this month (UTC).

A plain function over the jobs table (through JobStore, like operator_tools): it reads every job record with a Scan,
operator-only, and sums per model

- sent: jobs whose request left for the provider in the period (by submitted_at), with their estimated tokens;
- billed: the provider's own count (usage) of the jobs that succeeded in the period (by finished_at);
- charged: what the period's successes cost in tokens, the billed count where the provider reported one, else the
  job's estimate (only successful videos are billed);

and prices the charged tokens with the list prices below. The daily budget counter of today is shown as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.ports import JobCatalogPort
from seedance_pipeline.rules.token_estimate import utc_day

Currency = Literal["CNY", "USD"]
CURRENCIES: tuple[Currency, ...] = ("CNY", "USD")

# Published list prices per million tokens (late 2026): Volcengine Ark in CNY, BytePlus ModelArk in USD. Keyed by
# the model id without the Volcengine `doubao-` prefix (BytePlus ids drop it). A model missing here, or without a
# price in the chosen currency, is shown as tokens only.
PRICES_PER_MILLION: dict[str, dict[Currency, float]] = {
    "seedance-1-0-pro-250528": {"CNY": 15.0, "USD": 2.5},
    "seedance-1-0-pro-fast-251015": {"CNY": 4.2},
    "seedance-1-0-lite-i2v-250428": {"CNY": 10.0},
}


def platform_currency(model: str) -> Currency:
    """The currency of the platform a model id belongs to: Volcengine ids carry `doubao-`, BytePlus ids do not."""
    return "CNY" if model.startswith("doubao-") else "USD"


def price_per_million(model: str, currency: Currency) -> float | None:
    return PRICES_PER_MILLION.get(model.removeprefix("doubao-"), {}).get(currency)


@dataclass
class ModelSpend:
    model: str
    jobs_sent: int = 0
    estimated_tokens: int = 0
    jobs_succeeded: int = 0
    billed_tokens: int = 0
    succeeded_without_usage: int = 0
    charged_tokens: int = 0
    currency: Currency | None = None
    price_per_million: float | None = None
    estimated_cost: float | None = None


@dataclass
class PeriodSpend:
    name: str
    start: str
    models: list[ModelSpend] = field(default_factory=list)

    def total_cost(self, currency: Currency) -> float:
        return round(sum(m.estimated_cost or 0.0 for m in self.models if m.currency == currency), 4)


@dataclass
class SpendReport:
    generated_at: str
    periods: list[PeriodSpend]
    budget_day: str
    budget_committed_tokens: int

    def document(self) -> dict[str, object]:
        return asdict(self)


def period_starts(now: float) -> dict[str, datetime]:
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return {"today": today, "month": today.replace(day=1)}


def spend_report(store: JobCatalogPort, *, now: float, currency: Currency | None = None) -> SpendReport:
    """Tokens and estimated cost by model for today and this month (UTC); `currency` None prices each model in its
    platform's currency."""
    starts = period_starts(now)
    return summarise(store.iter_jobs(), starts=starts, now=now, currency=currency, committed=_committed(store, now))


def _committed(store: JobCatalogPort, now: float) -> int:
    return store.committed_tokens(utc_day(now))


def summarise(
    jobs: Iterable[Job], *, starts: dict[str, datetime], now: float, currency: Currency | None, committed: int
) -> SpendReport:
    bounds = {name: start.timestamp() for name, start in starts.items()}
    tables: dict[str, dict[str, ModelSpend]] = {name: {} for name in starts}
    for job in jobs:
        model = job.request.model if job.request else "unknown"
        for name, since in bounds.items():
            sent = job.submitted_at is not None and job.submitted_at >= since
            succeeded = job.status is JobStatus.SUCCEEDED and (job.finished_at or 0.0) >= since
            if not (sent or succeeded):
                continue
            row = tables[name].setdefault(model, ModelSpend(model=model))
            if sent:
                row.jobs_sent += 1
                row.estimated_tokens += job.estimated_tokens or 0
            if succeeded:
                row.jobs_succeeded += 1
                if job.billed_tokens is not None:
                    row.billed_tokens += job.billed_tokens
                    row.charged_tokens += job.billed_tokens
                else:
                    row.succeeded_without_usage += 1
                    row.charged_tokens += job.estimated_tokens or 0
    periods = []
    for name, start in starts.items():
        rows = sorted(tables[name].values(), key=lambda r: r.model)
        for row in rows:
            row.currency = currency or platform_currency(row.model)
            row.price_per_million = price_per_million(row.model, row.currency)
            if row.price_per_million is None:
                row.currency = None
            else:
                row.estimated_cost = round(row.charged_tokens / 1_000_000 * row.price_per_million, 4)
        periods.append(PeriodSpend(name=name, start=start.isoformat(), models=rows))
    return SpendReport(
        generated_at=datetime.fromtimestamp(now, UTC).isoformat(),
        periods=periods,
        budget_day=utc_day(now),
        budget_committed_tokens=committed,
    )
