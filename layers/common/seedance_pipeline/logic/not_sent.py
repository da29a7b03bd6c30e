"""What happens to a job that was not sent: back to WAITING (slot returned, retried later) or ended, as the outcome
table says; and reading a job's inputs so that a fault no adapter classified is recorded on the job, not lost."""

from __future__ import annotations

from seedance_pipeline.errors import (
    ImageUnreadable,
    Outcome,
    PipelineError,
    ProviderAuthError,
    ProviderThrottled,
    SecretUnavailable,
    outcome_of,
)
from seedance_pipeline.logic.check_schedule import waiting_retry_at
from seedance_pipeline.logic.job_inputs import JobInputs, load_inputs
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.moderation_outcome import end_moderated, moderation_of
from seedance_pipeline.models import Job, JobError, JobStatus
from seedance_pipeline.observability import MetricName, count, count_provider_error, logger
from seedance_pipeline.runtime import Runtime

AUTH_RETRY_SECONDS = 60.0
UNCERTAIN_ADVICE = "check the provider's console; if no video was made, run `seedance-pipeline jobs retry JOB_ID`"


def read_inputs(job: Job, runtime: Runtime) -> JobInputs:
    """load_inputs, with a fault no adapter classified recorded as the job's problem instead of escaping."""
    try:
        return load_inputs(job, runtime)
    except PipelineError:
        raise
    except Exception as exc:
        logger.exception("the image could not be read; the job waits")
        raise ImageUnreadable(
            f"the image s3://{job.source_bucket}/{job.source_key} could not be read ({type(exc).__name__}: "
            f"{str(exc)[:300]}); it is tried again until MaxJobAgeMinutes"
        ) from exc


def not_submitted(job: Job, runtime: Runtime, *, owner: str, error: PipelineError) -> Job:
    """The POST did not give us a task id: the outcome table says whether to wait, fail or stop."""
    outcome = outcome_of(error)
    if outcome is Outcome.TRY_LATER:
        return back_to_waiting(job, runtime, owner=owner, error=error)
    if outcome is Outcome.DROP:
        raise error
    count_provider_error(error.code)
    moderated = moderation_of(error.code, error.message) if outcome is Outcome.FAILED else None
    if moderated is not None:  # an input flagged at the POST: no task, not billed, never resent
        return end_moderated(job, runtime, owner=owner, moderation=moderated[0], rule=moderated[1], text=error.message)
    message = error.message
    if outcome is Outcome.UNCERTAIN:
        message = f"{error.message}. Not resent, to avoid paying twice: {UNCERTAIN_ADVICE}"
    return finish(job, runtime, owner=owner, status=JobStatus.FAILED, error_code=error.code, message=message)


def back_to_waiting(job: Job, runtime: Runtime, *, owner: str, error: PipelineError) -> Job:
    """The provider did not take the task: give the slot back and try again later. Never burns the job."""
    runtime.store.release_slot(job.job_id, slot=job.slot)
    now = runtime.clock()
    at_least = 0.0
    if isinstance(error, SecretUnavailable):
        count(MetricName.SECRET_ERROR)
        logger.error(
            "a secret the submission needs cannot be read: nothing was sent, jobs keep waiting",
            extra={"error_code": error.code, "secret_id": error.secret_id, "cause": error.cause, "fix": error.message},
        )
    elif isinstance(error, ProviderAuthError):
        count(MetricName.PROVIDER_AUTH_ERROR)
        logger.error(
            "the provider refused the API key: fix the key in the secret (jobs keep waiting)",
            extra={"error_code": error.code, "error": error.message},
        )
        runtime.refresh_provider()
        at_least = AUTH_RETRY_SECONDS * runtime.settings.check_schedule_scale
    elif isinstance(error, ImageUnreadable):
        logger.warning("the image could not be read; will retry", extra={"error_code": error.code})
    else:
        count_provider_error(error.code)
        logger.warning(
            "provider did not accept the task; will retry",
            extra={"error_code": error.code, "error": error.message},
        )
        if isinstance(error, ProviderThrottled) and error.retry_after:
            at_least = error.retry_after
    job = job.model_copy(
        update={
            "status": JobStatus.WAITING,
            "submission_started_at": None,
            "slot": None,
            "last_error": JobError(code=error.code, message=error.message),
        }
    )
    return reschedule(
        job, runtime, owner=owner, next_check_at=waiting_retry_at(now, runtime.settings, at_least=at_least)
    )


__all__ = ["AUTH_RETRY_SECONDS", "UNCERTAIN_ADVICE", "back_to_waiting", "not_submitted", "read_inputs"]
