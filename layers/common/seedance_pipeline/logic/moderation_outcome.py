"""A task or a POST the provider's moderation stopped: say what was flagged and what to do, and (when the operator
allows it, ResubmitOnOutputModeration) send one new task where a second try can help: only the output was flagged.

A flagged input (prompt, image, real person, reference media) is never resubmitted: the same input is flagged again
and a person must change it. A flagged output video is not billed, so one new task with another seed costs at most
one more video; a flagged output audio is retried silent. The resubmission goes through the ordinary submit path
(a WAITING job the poller sends): the slot, the budget and the never-pay-twice rules apply as to any job.
"""

from __future__ import annotations

from seedance_pipeline.errors import ErrorCode, ModerationRule, Resubmit, moderation_rule
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.models import Job, JobError, JobStatus, Moderation
from seedance_pipeline.observability import MetricName, count, logger
from seedance_pipeline.rules.lookup_seed import lookup_seed
from seedance_pipeline.runtime import Runtime

MAX_RESUBMISSIONS = 1


def moderation_of(code: str | None, text: str | None) -> tuple[Moderation, ModerationRule] | None:
    found = moderation_rule(code, text)
    if found is None:
        return None
    provider_code, rule = found
    return Moderation(what=rule.flagged, code=provider_code), rule


def moderated_message(rule: ModerationRule, provider_code: str, provider_text: str | None) -> str:
    said = f" The provider said: {provider_text}" if provider_text else ""
    return f"moderation flagged the {rule.flagged.replace('_', ' ')} ({provider_code}): {rule.advice}.{said}"


def end_moderated(
    job: Job, runtime: Runtime, *, owner: str, moderation: Moderation, rule: ModerationRule, text: str | None
) -> Job:
    """A job whose task (or POST) was stopped by moderation: resubmitted once where allowed, else FAILED with the
    reason a person can act on."""
    job = job.model_copy(update={"moderation": moderation})
    settings = runtime.settings
    allowed = (
        rule.resubmit is not None
        and settings.resubmit_on_output_moderation
        and job.resubmissions < MAX_RESUBMISSIONS
        and job.request is not None
        and job.task_id is not None
    )
    # A WAITING job's age counts from its upload: one past MaxJobAgeMinutes would time out unsent, so a person
    # decides (`jobs retry` restarts the age) rather than the job ending NEVER_SUBMITTED for no reason it shows.
    too_old = runtime.clock() - job.created_at > settings.max_job_age_seconds
    if allowed and not too_old and rule.resubmit is not None:
        return _resubmit(job, runtime, owner=owner, how=rule.resubmit, moderation=moderation)
    message = moderated_message(rule, moderation.code, text)
    if allowed and too_old:
        message = f"{message} (not resubmitted: the job is past MaxJobAgeMinutes)"
    return finish(job, runtime, owner=owner, status=JobStatus.FAILED, error_code=rule.code, message=message)


def resubmission_seed(job_id: str, attempt: int) -> int:
    """A seed of its own for each resubmission, the same on every worker: the job's lookup seed for that attempt,
    so a lost answer to the resubmission can still find its task in Ark's list (rules/lookup_seed)."""
    return lookup_seed(job_id, attempt)


def _resubmit(job: Job, runtime: Runtime, *, owner: str, how: Resubmit, moderation: Moderation) -> Job:
    assert job.request is not None  # checked by the caller
    attempt = job.resubmissions + 1
    if how is Resubmit.SILENT:
        request = job.request.model_copy(update={"generate_audio": False})
        change = "without audio"
    else:
        request = job.request.model_copy(update={"seed": resubmission_seed(job.job_id, attempt)})
        change = f"with seed {request.seed}"
    note = (
        f"task {job.task_id} ended with its {moderation.what.replace('_', ' ')} flagged ({moderation.code}); "
        f"ResubmitOnOutputModeration sent one new task {change} (resubmission {attempt} of {MAX_RESUBMISSIONS})"
    )
    # The flagged task is over: its slot goes back and the job queues like a new one, so the submit path takes a
    # slot, commits the budget again and records the new task; a crash in between leaves a WAITING job, never two.
    runtime.store.release_slot(job.job_id, slot=job.slot)
    now = runtime.clock()
    waiting = job.model_copy(
        update={
            "status": JobStatus.WAITING,
            "request": request,
            "task_id": None,
            "submitted_at": None,
            "submission_started_at": None,
            "provider_status": None,
            "slot": None,
            "resubmissions": attempt,
            "notes": [*job.notes, note],
            "last_error": JobError(
                code=ErrorCode.MODERATION_OUTPUT_VIDEO
                if how is Resubmit.NEW_SEED
                else ErrorCode.MODERATION_OUTPUT_AUDIO,
                message=note,
            ),
        }
    )
    count(MetricName.MODERATION_RESUBMISSIONS)
    logger.info("output flagged by moderation: one new task", extra={"code": moderation.code, "change": change})
    return reschedule(waiting, runtime, owner=owner, next_check_at=now)
