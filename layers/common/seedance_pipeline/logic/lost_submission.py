"""A POST whose answer was lost may still have made (and billed) a task. Where the dialect lists tasks (Ark), a task
is adopted only when it is provably this job's; else the submission stays uncertain and a person decides.

Provably this job's: the body carries the job's own seed (rules/lookup_seed: one derived from the job id, sent when
the upload set none), the list shows exactly one task of that seed, settings and time, and no other job holds or
has claimed that task (the store's claim_task). A seed the upload set, or -1, proves nothing: the list is not even
read. A job that adopted nothing has no task, and so never cancels one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seedance_pipeline.errors import PipelineError, SubmissionUncertain
from seedance_pipeline.models import Job
from seedance_pipeline.observability import logger
from seedance_pipeline.rules.lookup_seed import carries_lookup_seed
from seedance_pipeline.runtime import Runtime

# How far before our POST a listed task may be stamped and still be ours: the provider's clock is not ours.
LOOKUP_CLOCK_SKEW_SECONDS = 60.0


@dataclass(frozen=True)
class LostTask:
    """What the look-up found: the adopted task id, or None and, where it helps a person, why none was."""

    task_id: str | None = None
    why_not: str | None = None

    def uncertain(self, lost: SubmissionUncertain) -> SubmissionUncertain:
        """The lost answer's error, saying why no task was adopted."""
        return SubmissionUncertain(f"{lost.message} ({self.why_not})") if self.why_not else lost


def look_up_lost_task(job: Job, runtime: Runtime, body: dict[str, Any], *, sent_at: float) -> LostTask:
    """After a lost answer, the task this job's POST made, if the list proves it (see the module doc); else no
    task id and the submission stays uncertain. A failed look-up is only logged: it never makes things worse."""
    if not carries_lookup_seed(body, job.job_id, job.resubmissions):
        logger.info("lost submission not looked up: its seed was set by the upload, so the list cannot prove its task")
        return LostTask(why_not="the upload set the seed, so the provider's task list cannot tell its task apart")
    try:
        found = runtime.provider().find_task(
            body,
            since=sent_at - LOOKUP_CLOCK_SKEW_SECONDS,
            until=runtime.clock() + LOOKUP_CLOCK_SKEW_SECONDS,
            deadline=runtime.provider_deadline(job.lease_until),
        )
    except PipelineError as exc:
        logger.warning("could not look the lost submission up", extra={"error_code": exc.code, "error": exc.message})
        return LostTask()
    if found is None:
        return LostTask()
    if not runtime.store.claim_task(found, job.job_id):
        logger.warning("the listed task is held by another job: not adopted", extra={"task_id": found})
        return LostTask(why_not=f"task {found} matched in the provider's task list but another job holds it")
    logger.info("lost submission found in the provider's task list", extra={"task_id": found})
    return LostTask(task_id=found)
