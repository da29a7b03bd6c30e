"""A POST whose answer was lost may still have made (and billed) a task. Where the dialect lists tasks (Ark), the one
task that matches the request is adopted instead of declaring the submission uncertain."""

from __future__ import annotations

from typing import Any

from seedance_pipeline.errors import PipelineError
from seedance_pipeline.models import Job
from seedance_pipeline.observability import logger
from seedance_pipeline.runtime import Runtime

# How far before our POST a listed task may be stamped and still be ours: the provider's clock is not ours.
LOOKUP_CLOCK_SKEW_SECONDS = 60.0


def look_up_lost_task(job: Job, runtime: Runtime, body: dict[str, Any], *, sent_at: float) -> str | None:
    """After a lost answer, the one task the provider lists for this body, if it lists exactly one (Ark); else None
    and the submission stays uncertain. A failed look-up is only logged: it never makes things worse."""
    try:
        found = runtime.provider().find_task(
            body,
            since=sent_at - LOOKUP_CLOCK_SKEW_SECONDS,
            until=runtime.clock() + LOOKUP_CLOCK_SKEW_SECONDS,
            deadline=runtime.provider_deadline(job.lease_until),
        )
    except PipelineError as exc:
        logger.warning("could not look the lost submission up", extra={"error_code": exc.code, "error": exc.message})
        return None
    if found is not None:
        logger.info("lost submission found in the provider's task list", extra={"task_id": found})
    return found
