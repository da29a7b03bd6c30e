"""When to ask the provider about a job next: first when its video should be ready, then backing off."""

from __future__ import annotations

from seedance_pipeline.models import Job, VideoRequest
from seedance_pipeline.rules.token_estimate import next_utc_day_at
from seedance_pipeline.settings import Settings

# Seconds the pro model needs for a 5 s clip when it starts at once (provider docs: 1080p about 40-60 s).
_BASE_SECONDS = {"480p": 25.0, "720p": 35.0, "1080p": 45.0}
_LITE_FACTOR = 0.8
MIN_INTERVAL = 5.0
MAX_INTERVAL = 60.0
BACKOFF_FRACTION = 0.25
# A job whose provider calls back is checked first this many times later than its video should be ready: the
# callback normally brings the check forward, and this first check is only the net under a callback that never came.
CALLBACK_FIRST_CHECK_FACTOR = 3.0
WAITING_RETRY_SECONDS = 10.0
# A job held back by the daily token budget looks again this often (a raised budget applies within it), and at the
# next UTC midnight at the latest.
BUDGET_RETRY_SECONDS = 300.0


def expected_ready_seconds(request: VideoRequest) -> float:
    seconds = _BASE_SECONDS.get(request.resolution, 40.0) * (request.duration / 5)
    return seconds * (_LITE_FACTOR if "lite" in request.model else 1.0)


def next_check_at(job: Job, now: float, *, max_age_seconds: float, scale: float = 1.0) -> float:
    """A check interval that grows with the job's age (a quarter of it), between 5 and 60 seconds.

    `scale` shrinks every figure for providers much faster than Seedance (the local simulator).
    """
    # A paid job's age limit counts from its submission (the time it waited for capacity cost nothing).
    deadline = (job.submitted_at or job.created_at) + max_age_seconds
    submitted = job.submitted_at or now
    if job.checks == 0 and job.request is not None:
        factor = CALLBACK_FIRST_CHECK_FACTOR if job.expects_callback else 1.0
        planned = submitted + expected_ready_seconds(job.request) * factor * scale
    else:
        age = max(0.0, now - submitted)
        planned = now + min(MAX_INTERVAL * scale, max(MIN_INTERVAL * scale, age * BACKOFF_FRACTION))
    planned = max(planned, now + min(1.0, MIN_INTERVAL * scale))
    # One check just after the deadline decides; past it (a job never yet answered) the back-off applies.
    return min(planned, deadline + 1.0) if deadline + 1.0 > now else planned


def planned_check(job: Job, now: float, settings: Settings) -> float:
    return next_check_at(job, now, max_age_seconds=settings.max_job_age_seconds, scale=settings.check_schedule_scale)


def waiting_retry_at(now: float, settings: Settings, *, at_least: float = 0.0) -> float:
    """When a job that could not be sent (no capacity, throttled) is tried again."""
    return now + max(WAITING_RETRY_SECONDS * settings.check_schedule_scale, at_least)


def budget_retry_at(now: float, settings: Settings) -> float:
    """When a job the daily token budget held back is tried again: soon, and never later than the day's end."""
    return min(now + BUDGET_RETRY_SECONDS * settings.check_schedule_scale, next_utc_day_at(now) + 1.0)
