"""One delivery attempt of a finished task, and what a failed one leads to. A paid video is never dropped while it can
still be stored: a transient fault is retried on the job's schedule (a callback never brings that retry forward), a
refusal by the output bucket's KMS key waits for the grant while the provider keeps the video, and a job a newer
upload replaced keeps its video at its own key."""

from __future__ import annotations

from seedance_pipeline.errors import KmsAccessDenied, Outcome, PipelineError, Superseded, outcome_of
from seedance_pipeline.logic.check_schedule import waiting_retry_at
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.result_delivery import deliver_results, delivered_before
from seedance_pipeline.logic.supersession import replaced_by_newer_upload
from seedance_pipeline.models import Job, JobError, JobStatus, TaskResult
from seedance_pipeline.observability import MetricName, count, logger
from seedance_pipeline.rules.token_estimate import billed_tokens
from seedance_pipeline.runtime import Runtime


def deliver_or_retry(job: Job, result: TaskResult, runtime: Runtime, *, owner: str) -> Job:
    """Deliver a finished task's results, or decide what a failed delivery leads to: a retry on the job's schedule,
    a wait for an operator's KMS grant, or an end with the reason."""
    # A newer upload that can still deliver owns the key's outputs; this job's video was paid for all the same, so
    # it is kept at this job's own key (named in the error and the event), never left at the provider to expire.
    replaced = replaced_by_newer_upload(job, runtime)
    attempts = job.delivery_attempts + 1
    try:
        with runtime.delivery_slot():
            outputs, notes = deliver_results(job, result, runtime, replaced_by_newer=replaced)
    except PipelineError as exc:
        outcome = outcome_of(exc)
        if outcome is Outcome.DROP:
            raise
        if isinstance(exc, Superseded):
            kept = job.model_copy(update={"billed_tokens": billed_tokens(result.usage), "delivery_attempts": attempts})
            return finish(kept, runtime, owner=owner, status=JobStatus.FAILED, error_code=exc.code, message=exc.message)
        if isinstance(exc, KmsAccessDenied):
            return _await_kms_grant(job, runtime, owner=owner, error=exc, attempts=attempts)
        if outcome is not Outcome.TRY_LATER:
            return end_unless_delivered(
                job, runtime, owner=owner, status=JobStatus.FAILED, error_code=exc.code, message=exc.message
            )
        if attempts >= runtime.settings.max_delivery_attempts:
            return end_unless_delivered(
                job,
                runtime,
                owner=owner,
                status=JobStatus.FAILED,
                error_code=exc.code,
                message=f"{exc.message} (gave up after {attempts} attempts)",
            )
        job = job.model_copy(
            update={"delivery_attempts": attempts, "last_error": JobError(code=exc.code, message=exc.message)}
        )
        retry_at = (
            waiting_retry_at(runtime.clock(), runtime.settings) + attempts * runtime.settings.check_schedule_scale
        )
        return reschedule(job, runtime, owner=owner, next_check_at=retry_at)
    job = job.model_copy(
        update={
            "outputs": outputs,
            "billed_tokens": billed_tokens(result.usage),
            "notes": [*job.notes, *notes],
            "delivery_attempts": attempts,
            "last_error": None,
        }
    )
    return finish(job, runtime, owner=owner, status=JobStatus.SUCCEEDED)


def end_unless_delivered(
    job: Job, runtime: Runtime, *, owner: str, status: JobStatus, error_code: str, message: str
) -> Job:
    """End the job as judged, unless an earlier delivery of it already switched the key's sidecar to its outputs and
    stopped before recording the job (a crash, a timeout): then the video is delivered, and the job SUCCEEDED as its
    sidecar says, whatever this check met. One sidecar read, only on the way to an unhappy end."""
    try:
        delivered = delivered_before(job, runtime)
    except Exception as exc:  # no evidence either way: the end judged stands, as it did before the sidecar existed
        logger.warning("could not read the key's sidecar before ending the job", extra={"error": type(exc).__name__})
        delivered = None
    if delivered is None:
        return finish(job, runtime, owner=owner, status=status, error_code=error_code, message=message)
    outputs, billed = delivered
    note = (
        "recorded from its sidecar: an earlier delivery stored and named the outputs, then stopped before recording "
        f"the job; this check met {error_code} ({message})"
    )
    recovered = job.model_copy(
        update={"outputs": outputs, "billed_tokens": billed, "notes": [*job.notes, note], "last_error": None}
    )
    recorded = finish(recovered, runtime, owner=owner, status=JobStatus.SUCCEEDED)
    count(MetricName.DELIVERIES_RECOVERED)  # once recorded: a lease lost to another worker leaves it to that one
    return recorded


# A paid video the output bucket's key refuses to store waits for an operator's grant rather than being dropped: the
# provider keeps a result about 24 h after the task finished (docs/provider-api.md), so the delivery is tried again
# every 15 minutes for a little under that, then given up with the reason.
KMS_RETRY_SECONDS = 15 * 60
KMS_RETRY_ATTEMPTS = 92  # 92 x 15 min = 23 h


def _await_kms_grant(job: Job, runtime: Runtime, *, owner: str, error: KmsAccessDenied, attempts: int) -> Job:
    count(MetricName.DELIVERIES_BLOCKED_BY_KMS)
    logger.error(
        "a paid video cannot be stored: the output bucket's KMS key refuses this function (grant it to keep the video)",
        extra={"error_code": error.code, "error": error.message, "delivery_attempts": attempts},
    )
    if attempts >= KMS_RETRY_ATTEMPTS:
        # A delivery that switched the sidecar before the key began refusing has stored and named the video: a
        # `jobs retry` would pay for it again.
        return end_unless_delivered(
            job,
            runtime,
            owner=owner,
            status=JobStatus.FAILED,
            error_code=error.code,
            message=f"{error.message} (gave up after {attempts} attempts over about a day: the provider deletes a "
            "result about 24 h after it finished; `jobs retry` generates the video again, and pays again)",
        )
    job = job.model_copy(
        update={
            "delivery_attempts": attempts,
            "last_error": JobError(
                code=error.code,
                message=f"{error.message} (the paid video waits at the provider: tried again every 15 minutes "
                "for about a day)",
            ),
        }
    )
    retry_at = runtime.clock() + KMS_RETRY_SECONDS * runtime.settings.check_schedule_scale
    return reschedule(job, runtime, owner=owner, next_check_at=retry_at)
