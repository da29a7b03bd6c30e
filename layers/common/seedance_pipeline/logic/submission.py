"""Submit logic: claim an upload's job once, check the image, resolve the request, admit it, send it.

`accept_upload` runs in the submit function; `submit_job` also runs in the poller for WAITING jobs, so a job
that had to wait for capacity, or whose submit invocation crashed, is sent by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from seedance_pipeline.errors import (
    AlreadyClaimed,
    ErrorCode,
    ImageUnreadable,
    InvalidInput,
    ObjectArchived,
    ObjectGone,
    Outcome,
    PipelineError,
    ProviderAuthError,
    SecretUnavailable,
    SubmissionUncertain,
    outcome_of,
)
from seedance_pipeline.logic.batch_intake import accept_batch
from seedance_pipeline.logic.batch_reading import is_batch_upload
from seedance_pipeline.logic.check_schedule import planned_check, waiting_retry_at
from seedance_pipeline.logic.job_inputs import image_urls, media_urls, with_request
from seedance_pipeline.logic.job_lifecycle import finish, reschedule
from seedance_pipeline.logic.lost_submission import look_up_lost_task
from seedance_pipeline.logic.not_sent import UNCERTAIN_ADVICE, back_to_waiting, not_submitted, read_inputs
from seedance_pipeline.logic.supersession import replaced_by_newer_upload
from seedance_pipeline.logic.token_budget import commit_tokens, held_by_budget, over_budget, past_waiting_age
from seedance_pipeline.models import Job, JobStatus, Upload, UploadDisposition
from seedance_pipeline.observability import (
    MetricName,
    add_task_id_to_logs,
    count,
    count_tokens,
    job_log_context,
    logger,
)
from seedance_pipeline.rules import image_rules
from seedance_pipeline.rules.callback_token import callback_token, callback_url_for
from seedance_pipeline.rules.keys import check_output_keys, due_shard_for, ignore_reason, job_id_for
from seedance_pipeline.rules.video_request import provider_body_for
from seedance_pipeline.runtime import Runtime
from seedance_pipeline.triggers.upload_events import ParsedEvent


class UploadOutcome(BaseModel):
    key: str
    outcome: JobStatus | UploadDisposition
    job_id: str | None = None
    reason: str | None = None


class SubmitReport(BaseModel):
    outcomes: list[UploadOutcome]


def handle_event(parsed: ParsedEvent, runtime: Runtime, *, owner: str) -> SubmitReport:
    for description, reason in parsed.ignored:
        logger.info("ignoring event record", extra={"record": description, "reason": reason})
    return SubmitReport(outcomes=[accept_upload(upload, runtime, owner=owner) for upload in parsed.uploads])


def accept_upload(upload: Upload, runtime: Runtime, *, owner: str) -> UploadOutcome:
    settings = runtime.settings
    reason = ignore_reason(upload.key, settings)
    if reason:
        logger.info("ignoring object", extra={"key": upload.key, "reason": reason})
        return UploadOutcome(key=upload.key, outcome=UploadDisposition.IGNORED, reason=reason)
    if is_batch_upload(upload, runtime):
        outcome, batch_id, why = accept_batch(upload, runtime, owner=owner)
        return UploadOutcome(key=upload.key, outcome=outcome, job_id=batch_id, reason=why)

    now = runtime.clock()
    job = Job(
        job_id=job_id_for(upload),
        status=JobStatus.WAITING,
        source_bucket=upload.bucket,
        source_key=upload.key,
        source_version_id=upload.version_id,
        source_etag=upload.etag,
        source_sequencer=upload.sequencer,
        created_at=now,
        updated_at=now,
        # If this invocation dies, the poller finds the job here once the claim lease has run out.
        next_check_at=now + settings.claim_lease_seconds,
        lease_owner=owner,
        lease_until=now + settings.claim_lease_seconds,
    )
    with job_log_context(job.job_id):
        return _claim_and_submit(upload, job, runtime, owner=owner)


def _claim_and_submit(upload: Upload, job: Job, runtime: Runtime, *, owner: str) -> UploadOutcome:
    settings = runtime.settings
    try:
        runtime.store.claim(job, due_shard=due_shard_for(job.job_id, settings.due_index_shards))
    except AlreadyClaimed:
        count(MetricName.DUPLICATE_EVENTS)
        logger.info("duplicate delivery ignored", extra={"key": upload.key})
        return UploadOutcome(key=upload.key, outcome=UploadDisposition.DUPLICATE, job_id=job.job_id)
    if (
        upload.sequencer
        and not runtime.store.record_latest_upload(
            upload.bucket, upload.key, sequencer=upload.sequencer, job_id=job.job_id
        )
        and replaced_by_newer_upload(job, runtime)
    ):
        return _outcome(
            upload,
            finish(
                job,
                runtime,
                owner=owner,
                status=JobStatus.REJECTED,
                error_code=ErrorCode.SUPERSEDED,
                message="a newer upload of this key was seen first; this older event is not processed",
            ),
        )
    if upload.size is not None:
        try:
            image_rules.check_size(upload.size)
        except InvalidInput as exc:
            return _outcome(
                upload,
                finish(job, runtime, owner=owner, status=JobStatus.REJECTED, error_code=exc.code, message=exc.message),
            )
    return _outcome(upload, try_submit(job, runtime, owner=owner, just_claimed=True).job)


def _outcome(upload: Upload, job: Job) -> UploadOutcome:
    return UploadOutcome(
        key=upload.key, outcome=job.status, job_id=job.job_id, reason=job.error.message if job.error else None
    )


class Blocked(StrEnum):
    """Why a WAITING job stayed WAITING in a way every job behind it would meet too (so the poller stops)."""

    NO_CAPACITY = "NO_CAPACITY"
    KEY_REFUSED = "KEY_REFUSED"
    SECRET_UNAVAILABLE = "SECRET_UNAVAILABLE"  # noqa: S105 (a name, not a password)
    DAILY_BUDGET = "DAILY_BUDGET"


@dataclass(frozen=True)
class SubmitAttempt:
    job: Job
    blocked: Blocked | None = None


def submit_job(job: Job, runtime: Runtime, *, owner: str) -> Job:
    """For a leased WAITING job: validate, admit, submit. Always leaves the job saved and consistent."""
    return try_submit(job, runtime, owner=owner).job


def try_submit(job: Job, runtime: Runtime, *, owner: str, just_claimed: bool = False) -> SubmitAttempt:
    """submit_job, also saying whether the jobs queued behind this one can be sent now. `just_claimed`: this
    invocation created the job moments ago, so no earlier attempt can have taken a slot for it."""
    settings = runtime.settings
    now = runtime.clock()
    if job.submission_started_at and not job.task_id:
        # A submission left here before and its outcome was never recorded (crash, lost answer, a refused write of
        # the task id). Sending it again could pay twice, so a person decides: `seedance-pipeline jobs retry`.
        # Checked before the age limit: a job whose body may have left is uncertain whatever its age, never
        # "could not be submitted" (the runbook's console check is asked for on SUBMISSION_UNCERTAIN only).
        return SubmitAttempt(
            finish(
                job,
                runtime,
                owner=owner,
                status=JobStatus.FAILED,
                error_code=ErrorCode.SUBMISSION_UNCERTAIN,
                message="an earlier submission attempt ended without a recorded answer; the provider may have "
                f"created the task. {UNCERTAIN_ADVICE}",
            )
        )
    if past_waiting_age(job, now, runtime) and not over_budget(job, runtime, now):
        last = f" (last problem: {job.last_error.message})" if job.last_error else ""
        return SubmitAttempt(
            finish(
                job,
                runtime,
                owner=owner,
                status=JobStatus.TIMED_OUT,
                error_code=ErrorCode.NEVER_SUBMITTED,
                message=f"the job could not be submitted within {settings.max_job_age_minutes:g} minutes{last}",
            )
        )

    # An upload seen for the first time is checked at once, so a bad image is rejected even while the provider is
    # full. A job checked before (its request is recorded) is read again only once it holds a slot: a queued job
    # costs no S3 read and no image decode per poll.
    inputs = None
    if job.request is None:
        try:
            inputs = read_inputs(job, runtime)
            check_output_keys(job.source_key, settings)
        except (InvalidInput, ObjectGone, ObjectArchived) as exc:
            return SubmitAttempt(_rejected(job, runtime, owner=owner, error=exc))
        except ImageUnreadable as exc:
            return SubmitAttempt(back_to_waiting(job, runtime, owner=owner, error=exc))
        job = with_request(job, inputs, runtime)

    # The keys (the API key, and the callback signing key when callbacks are sent) are read before a slot is taken
    # or anything is marked as sent: a secret outage leaves the job exactly as it was, WAITING, never uncertain.
    signing_key = None
    try:
        runtime.provider()
        if settings.sends_callbacks:
            signing_key = runtime.callback_signing_key()
    except PipelineError as exc:  # an unreadable secret, or an empty or unconfigured one (ProviderAuthError)
        not_ready = not_submitted(job, runtime, owner=owner, error=exc)
        return SubmitAttempt(not_ready, _blocked_by(exc) if not_ready.status is JobStatus.WAITING else None)

    if not runtime.store.acquire_slot(job.job_id, settings.max_in_flight, new_holder=just_claimed):
        count(MetricName.JOB_WAITING)
        logger.info("no provider capacity; job waits")
        waiting = reschedule(job, runtime, owner=owner, next_check_at=waiting_retry_at(now, settings))
        return SubmitAttempt(waiting, Blocked.NO_CAPACITY)

    if inputs is None:
        try:
            inputs = read_inputs(job, runtime)
        except (InvalidInput, ObjectGone, ObjectArchived) as exc:
            return SubmitAttempt(_rejected(job, runtime, owner=owner, error=exc))  # finish gives the slot back
        except ImageUnreadable as exc:
            # An unexpected fault (say, a missing S3 permission) leaves the job WAITING, off its slot, with the
            # fault recorded: its age limit ends it naming the problem, whatever held it before (the budget).
            return SubmitAttempt(back_to_waiting(job, runtime, owner=owner, error=exc))
        job = with_request(job, inputs, runtime)
    request = inputs.request

    if _superseded_before_sending(job, runtime):
        return SubmitAttempt(
            finish(
                job,
                runtime,
                owner=owner,
                status=JobStatus.REJECTED,
                error_code=ErrorCode.SUPERSEDED,
                message="a newer upload of this key was seen while this one waited; this one is not sent",
            )
        )

    # The URL carries the job's token: it goes into the request body only, never the job record or a log line.
    callback_url = (
        callback_url_for(settings.callback_url, job.job_id, callback_token(signing_key, job.job_id))
        if signing_key is not None
        else None
    )
    urls, media = image_urls(inputs, job.source_bucket, runtime), media_urls(inputs, job.source_bucket, runtime)
    body = provider_body_for(settings, request, urls, inputs.mode, callback_url=callback_url, media_urls=media)
    del inputs  # the image bytes (and any base64 copy) are not needed past this point

    # The budget is committed last before the POST, holding a slot, so only a job that is about to be sent counts.
    commitment = commit_tokens(job, runtime, now)
    if commitment is None:
        return SubmitAttempt(held_by_budget(job, runtime, owner=owner, now=now), Blocked.DAILY_BUDGET)

    job = job.model_copy(
        update={
            "submission_started_at": now,
            "attempts": job.attempts + 1,
            "updated_at": now,
            "slot": runtime.store.held_slot(job.job_id),
        }
    )
    runtime.store.save(job.bounded(), owner=owner, due_shard=due_shard_for(job.job_id, settings.due_index_shards))
    try:
        task_id = runtime.provider().submit(body, deadline=runtime.provider_deadline(job.lease_until))
    except SubmissionUncertain as exc:
        lost = look_up_lost_task(job, runtime, body, sent_at=now)
        if lost.task_id is None:
            return SubmitAttempt(not_submitted(job, runtime, owner=owner, error=lost.uncertain(exc)))
        task_id = lost.task_id
        job = job.model_copy(
            update={
                "notes": [
                    *job.notes,
                    f"the answer to the submission was lost ({exc.message}); task {task_id} was found in the "
                    "provider's task list (this job's own seed, same settings and time) and adopted",
                ]
            }
        )
    except PipelineError as exc:
        if outcome_of(exc) in (Outcome.TRY_LATER, Outcome.FAILED):
            # No task was created (a refusal or nothing sent), so nothing is billed; an uncertain POST keeps them.
            commitment.give_back(runtime)
        not_sent = not_submitted(job, runtime, owner=owner, error=exc)
        return SubmitAttempt(not_sent, _blocked_by(exc) if not_sent.status is JobStatus.WAITING else None)

    submitted_at = runtime.clock()
    job = job.model_copy(
        update={
            "status": JobStatus.SUBMITTED,
            "task_id": task_id,
            "submitted_at": submitted_at,
            "last_error": None,
            "expects_callback": callback_url is not None,
        }
    )
    count(MetricName.JOB_SUBMITTED)
    if job.estimated_tokens is not None:
        count_tokens(MetricName.TOKENS_SUBMITTED, request.model, job.estimated_tokens)
    add_task_id_to_logs(task_id)
    logger.info("job submitted")
    return SubmitAttempt(
        reschedule(
            job,
            runtime,
            owner=owner,
            next_check_at=planned_check(job, submitted_at, settings),
        )
    )


def _superseded_before_sending(job: Job, runtime: Runtime) -> bool:
    """The key's newest-upload record must name this job before it is paid for. The submit function records it
    right after the claim, but a crash in between leaves it unrecorded, and the poller's check at delivery would
    then fail this newer job as replaced by the older one; and a newer upload may have arrived while this one
    waited for capacity. One consistent read; a write only when the record names another job. A newer upload that
    can no longer deliver (rejected, failed) replaces nothing: this one is sent."""
    if not job.source_sequencer:
        return False
    store = runtime.store
    if store.latest_job_for(job.source_bucket, job.source_key) == job.job_id:
        return False
    if store.record_latest_upload(job.source_bucket, job.source_key, sequencer=job.source_sequencer, job_id=job.job_id):
        return False
    return replaced_by_newer_upload(job, runtime)


def _blocked_by(error: PipelineError) -> Blocked | None:
    if isinstance(error, ProviderAuthError):
        return Blocked.KEY_REFUSED
    if isinstance(error, SecretUnavailable):
        return Blocked.SECRET_UNAVAILABLE
    return None


def _rejected(job: Job, runtime: Runtime, *, owner: str, error: InvalidInput | ObjectGone | ObjectArchived) -> Job:
    return finish(job, runtime, owner=owner, status=JobStatus.REJECTED, error_code=error.code, message=error.message)
