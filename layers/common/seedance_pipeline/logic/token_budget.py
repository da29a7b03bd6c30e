"""DailyTokenBudget: how a job's estimated tokens are taken out of today's (UTC) budget before it is sent, given back
when nothing was sent, and how a job the budget holds back waits (WAITING, never failed, never aged out)."""

from __future__ import annotations

from dataclasses import dataclass

from seedance_pipeline.errors import ErrorCode
from seedance_pipeline.logic.check_schedule import budget_retry_at
from seedance_pipeline.logic.job_lifecycle import reschedule
from seedance_pipeline.models import Job, JobError
from seedance_pipeline.observability import MetricName, MetricUnit, count, logger
from seedance_pipeline.rules.token_estimate import next_utc_day_at, utc_day
from seedance_pipeline.runtime import Runtime


def past_waiting_age(job: Job, now: float, runtime: Runtime) -> bool:
    """A WAITING job's age limit. Waiting for the daily budget never counts: a job the budget held counts its age
    from when the budget let it go. While the budget's refusal is still its last word, that is the next UTC day at
    the latest (the day's committed tokens start again from zero); once anything else happened to it, the retry
    after the last hold. Never unbounded: a fault that leaves `last_error` as it was must not keep a job the budget
    once held WAITING for ever."""
    since = job.created_at
    if job.budget_blocked_at is not None:
        still_held = job.last_error is not None and job.last_error.code == ErrorCode.DAILY_BUDGET_REACHED
        released = (
            next_utc_day_at(job.budget_blocked_at)
            if still_held
            else budget_retry_at(job.budget_blocked_at, runtime.settings)
        )
        since = max(since, released)
    return now - since > runtime.settings.max_job_age_seconds


def over_budget(job: Job, runtime: Runtime, now: float) -> bool:
    """Whether today's budget would hold this job back (then it waits for the budget instead of timing out)."""
    budget = runtime.settings.daily_token_budget
    if not budget or not job.estimated_tokens:
        return False
    return runtime.store.committed_tokens(utc_day(now)) + job.estimated_tokens > budget


@dataclass(frozen=True)
class TokenCommitment:
    """Tokens this job holds under today's budget (none when no budget is set), to give back if nothing is sent."""

    day: str
    tokens: int

    def give_back(self, runtime: Runtime) -> None:
        if self.tokens:
            runtime.store.return_tokens(self.day, self.tokens)


def commit_tokens(job: Job, runtime: Runtime, now: float) -> TokenCommitment | None:
    """Take the job's estimate out of today's (UTC) DailyTokenBudget; None when it does not fit."""
    budget = runtime.settings.daily_token_budget
    day = utc_day(now)
    if not budget or not job.estimated_tokens:
        return TokenCommitment(day, 0)
    committed = runtime.store.commit_tokens(day, job.estimated_tokens, budget=budget)
    if committed is None:
        return None
    count(MetricName.DAILY_TOKENS_COMMITTED, committed)
    count(MetricName.DAILY_TOKEN_BUDGET_USED_PERCENT, round(100 * committed / budget, 2), MetricUnit.Percent)
    return TokenCommitment(day, job.estimated_tokens)


def held_by_budget(job: Job, runtime: Runtime, *, owner: str, now: float) -> Job:
    """Sending this job would pass today's budget: give the slot back and wait, WAITING, for the next UTC day or a
    raised budget. Never fails the job."""
    runtime.store.release_slot(job.job_id)
    budget = runtime.settings.daily_token_budget
    committed = runtime.store.committed_tokens(utc_day(now))
    count(MetricName.JOB_WAITING)
    count(MetricName.DAILY_TOKEN_BUDGET_USED_PERCENT, round(100 * committed / budget, 2), MetricUnit.Percent)
    logger.warning(
        "daily token budget reached; job waits",
        extra={"estimated_tokens": job.estimated_tokens, "committed_tokens": committed, "budget": budget},
    )
    message = (
        f"daily budget reached: this job's estimated {job.estimated_tokens:,} tokens would take today's (UTC) "
        f"{committed:,} committed tokens past DailyTokenBudget {budget:,}; it waits for the next UTC day or a "
        "raised budget"
    )
    if (job.estimated_tokens or 0) > budget:
        message += " (this job alone is larger than the whole budget: only a raised budget lets it through)"
    job = job.model_copy(
        update={
            "last_error": JobError(code=ErrorCode.DAILY_BUDGET_REACHED, message=message),
            "budget_blocked_at": now,
        }
    )
    return reschedule(job, runtime, owner=owner, next_check_at=budget_retry_at(now, runtime.settings))
