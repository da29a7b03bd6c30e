"""Domain errors, the codes a job record can carry, and the one table of what each error leads to.

Adapters translate ClientError codes and HTTP statuses into these errors; logic looks the error up in
`OUTCOMES` instead of repeating except-branches, so a new error is one row here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from seedance_pipeline.redaction import redact_tokens


class ErrorCode(StrEnum):
    """Every code our own code writes into a job's `error` or `last_error`.

    Provider refusals and throttles carry the provider's own code instead (e.g. `ModelNotOpen`,
    `ModelAccountRpmRateLimitExceeded`), so an operator sees exactly what the provider said.
    """

    PIPELINE_ERROR = "PIPELINE_ERROR"
    # The upload itself: REJECTED, never retried.
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_METADATA = "INVALID_METADATA"
    INVALID_MANIFEST = "INVALID_MANIFEST"
    INVALID_BATCH = "INVALID_BATCH"
    EMPTY_IMAGE = "EMPTY_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    NOT_AN_IMAGE = "NOT_AN_IMAGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    IMAGE_DIMENSIONS = "IMAGE_DIMENSIONS"
    IMAGE_ASPECT_RATIO = "IMAGE_ASPECT_RATIO"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    OBJECT_GONE = "OBJECT_GONE"
    # The image was moved to an archive storage class (Glacier, Deep Archive, an archive tier): REJECTED; restore
    # it (or upload it again) and run `jobs retry`.
    IMAGE_ARCHIVED = "IMAGE_ARCHIVED"
    # The image could not be read for a reason no adapter classified (a missing permission, an S3 fault): the job
    # keeps WAITING and is read again, until MaxJobAgeMinutes ends it NEVER_SUBMITTED naming this problem.
    IMAGE_UNREADABLE = "IMAGE_UNREADABLE"
    OUTPUT_KEY_TOO_LONG = "OUTPUT_KEY_TOO_LONG"
    SUPERSEDED = "SUPERSEDED"
    # A bucket's KMS key refuses the functions (missing grant, disabled or deleted key): nothing retries it.
    KMS_ACCESS_DENIED = "KMS_ACCESS_DENIED"
    # The provider's side.
    PROVIDER_REJECTED = "PROVIDER_REJECTED"
    PROVIDER_THROTTLED = "PROVIDER_THROTTLED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PROVIDER_AUTH = "PROVIDER_AUTH"
    PROVIDER_FAILURE = "PROVIDER_FAILURE"
    SUBMISSION_UNCERTAIN = "SUBMISSION_UNCERTAIN"
    # Our own configuration: the API key secret cannot be read (missing, throttled, KMS or IAM denial).
    SECRET_UNAVAILABLE = "SECRET_UNAVAILABLE"  # noqa: S105 (a name, not a password)
    # Our own spending cap (DailyTokenBudget): the job waits for the next UTC day or a raised budget.
    DAILY_BUDGET_REACHED = "DAILY_BUDGET_REACHED"
    # The provider's moderation flagged something (MODERATION below says what, and what a person can do).
    MODERATION_PROMPT = "MODERATION_PROMPT"
    MODERATION_IMAGE = "MODERATION_IMAGE"
    MODERATION_REAL_PERSON = "MODERATION_REAL_PERSON"
    MODERATION_INPUT_MEDIA = "MODERATION_INPUT_MEDIA"
    MODERATION_OUTPUT_VIDEO = "MODERATION_OUTPUT_VIDEO"
    MODERATION_OUTPUT_AUDIO = "MODERATION_OUTPUT_AUDIO"
    # Results.
    DOWNLOAD_REFUSED = "DOWNLOAD_REFUSED"
    RESULT_EXPIRED = "RESULT_EXPIRED"
    RESULT_UNAVAILABLE = "RESULT_UNAVAILABLE"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    # Age limits.
    NEVER_SUBMITTED = "NEVER_SUBMITTED"
    TIMED_OUT = "TIMED_OUT"
    # Coordination between workers (never stored on a job).
    LEASE_LOST = "LEASE_LOST"
    ALREADY_CLAIMED = "ALREADY_CLAIMED"
    HANDOFF_FAILED = "HANDOFF_FAILED"


class Outcome(StrEnum):
    """What an error does to the job that met it."""

    TRY_LATER = "TRY_LATER"  # nothing was decided: a WAITING job stays WAITING, a live job is checked again
    REJECTED = "REJECTED"  # the upload breaks a rule: terminal, never retried
    FAILED = "FAILED"  # the provider or the result said no: terminal
    UNCERTAIN = "UNCERTAIN"  # the provider may have accepted a task: terminal, never resent (no paying twice)
    DROP = "DROP"  # another worker owns the job: leave it alone


class PipelineError(Exception):
    """Base class; `code` is what lands in a job record's `error.code`."""

    code: str = ErrorCode.PIPELINE_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        # Most messages quote a provider, which may echo the request's callback URL: an error is logged, stored and
        # published, so it never holds a callback token.
        message = redact_tokens(message)
        super().__init__(message)
        self.message = message
        if code:
            self.code = redact_tokens(code)


class InvalidInput(PipelineError):
    """The upload or its metadata breaks a rule; the job is REJECTED and never retried."""

    code = ErrorCode.INVALID_INPUT


class KmsAccessDenied(InvalidInput):
    """S3 could not use a bucket's KMS key for us (no grant, a disabled, missing or deleted key).

    A configuration fault no retry of ours can mend: an input is REJECTED before anything is paid. A delivery of a
    paid video waits for the grant instead (logic/status_check.py: retried every 15 minutes while the provider keeps
    the video, about a day), then FAILED; the message names the bucket, what S3 said (the key, the action) and what
    to grant.
    """

    code = ErrorCode.KMS_ACCESS_DENIED


class ProviderRejected(PipelineError):
    """The provider answered 400/404 for this request: retrying the same request cannot help."""

    code = ErrorCode.PROVIDER_REJECTED


class ProviderThrottled(PipelineError):
    """429 after our own retries: try again on a later poll."""

    code = ErrorCode.PROVIDER_THROTTLED

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ProviderUnavailable(PipelineError):
    """5xx, timeouts, dropped connections or unreadable answers after our retries: try again later."""

    code = ErrorCode.PROVIDER_UNAVAILABLE


class ProviderAuthError(PipelineError):
    """401/403: a configuration fault (wrong key, unpaid account). Jobs wait; an operator must act."""

    code = ErrorCode.PROVIDER_AUTH


class SecretUnavailable(PipelineError):
    """The API key secret could not be read. Nothing was sent: jobs wait and resume once it is readable."""

    code = ErrorCode.SECRET_UNAVAILABLE

    def __init__(self, message: str, *, secret_id: str, cause: str) -> None:
        super().__init__(message)
        self.secret_id = secret_id
        # An AWS error code or exception class name, never the secret's value.
        self.cause = cause


class DailyBudgetReached(PipelineError):
    """Sending this job would take today's (UTC) committed tokens past DailyTokenBudget. Nothing was sent."""

    code = ErrorCode.DAILY_BUDGET_REACHED


class SubmissionUncertain(PipelineError):
    """The provider may have accepted a task we never heard back about; resubmitting could pay twice."""

    code = ErrorCode.SUBMISSION_UNCERTAIN


class DownloadRefused(PipelineError):
    """A result URL is not one we may follow (scheme, address, size)."""

    code = ErrorCode.DOWNLOAD_REFUSED


class ResultExpired(PipelineError):
    """The provider's result URL answers 403/404: results are deleted after about 24 h."""

    code = ErrorCode.RESULT_EXPIRED


class ResultUnavailable(PipelineError):
    """The result could not be fetched right now (network, 5xx): try again on a later poll."""

    code = ErrorCode.RESULT_UNAVAILABLE


class DeliveryFailed(PipelineError):
    """Writing the results into S3 failed for a reason no adapter classified (e.g. a ClientError): an attempt."""

    code = ErrorCode.DELIVERY_FAILED


class Superseded(PipelineError):
    """A newer upload of the same key delivered its outputs first: this job's must not replace them."""

    code = ErrorCode.SUPERSEDED


class LeaseLost(PipelineError):
    """Another worker holds or has finished this job; drop it quietly."""

    code = ErrorCode.LEASE_LOST


class AlreadyClaimed(PipelineError):
    """A duplicate delivery of an upload that already has a job."""

    code = ErrorCode.ALREADY_CLAIMED


class HandoffFailed(PipelineError):
    """Lambda did not take a callback's asynchronous hand-off: the provider is asked to call again, and the job's
    scheduled status check remains."""

    code = ErrorCode.HANDOFF_FAILED


class ObjectGone(PipelineError):
    """The uploaded object (at this version/ETag) no longer exists: deleted or overwritten since the event."""

    code = ErrorCode.OBJECT_GONE


class ObjectArchived(PipelineError):
    """GetObject answered 403 InvalidObjectState: the object is in an archive storage class and must be restored
    before it can be read. Waiting does not change that, so the job ends with this as its reason."""

    code = ErrorCode.IMAGE_ARCHIVED


class ImageUnreadable(PipelineError):
    """Reading the image failed for a reason no adapter classified: nothing was sent, the job waits and is tried
    again (its age limit still applies)."""

    code = ErrorCode.IMAGE_UNREADABLE


# The one table. Where a phase reads an outcome differently it says so: TRY_LATER before a POST means
# "back to WAITING, slot returned"; after a task exists it means "check again later".
OUTCOMES: dict[type[PipelineError], Outcome] = {
    InvalidInput: Outcome.REJECTED,
    ObjectGone: Outcome.REJECTED,
    KmsAccessDenied: Outcome.REJECTED,
    ObjectArchived: Outcome.REJECTED,
    ImageUnreadable: Outcome.TRY_LATER,
    ProviderRejected: Outcome.FAILED,
    DownloadRefused: Outcome.FAILED,
    ProviderThrottled: Outcome.TRY_LATER,
    ProviderUnavailable: Outcome.TRY_LATER,
    ProviderAuthError: Outcome.TRY_LATER,
    ResultExpired: Outcome.TRY_LATER,
    ResultUnavailable: Outcome.TRY_LATER,
    DeliveryFailed: Outcome.TRY_LATER,
    Superseded: Outcome.FAILED,
    SecretUnavailable: Outcome.TRY_LATER,
    DailyBudgetReached: Outcome.TRY_LATER,
    SubmissionUncertain: Outcome.UNCERTAIN,
    LeaseLost: Outcome.DROP,
    AlreadyClaimed: Outcome.DROP,
}


def outcome_of(error: PipelineError) -> Outcome:
    for cls in type(error).__mro__:
        if cls in OUTCOMES:
            return OUTCOMES[cls]
    return Outcome.FAILED


class Resubmit(StrEnum):
    """What a second task changes when a flag is one a second try can clear (ResubmitOnOutputModeration)."""

    NEW_SEED = (
        "new_seed"  # the output video was flagged: another seed makes another video (a flagged one is not billed)
    )
    SILENT = "silent"  # only the output audio was flagged: the same request without audio


@dataclass(frozen=True)
class ModerationRule:
    code: ErrorCode
    flagged: str  # what was flagged, as the job's `moderation.what` names it
    advice: str
    resubmit: Resubmit | None = None


# The provider's moderation codes (docs/provider-api.md, "Moderation outcomes"), most specific first: a code is
# matched as a whole word of the failure text, so `InputImageSensitiveContentDetected.PrivacyInformation` is a real
# person's face and not just an image. A flagged input is never resubmitted: the same input is flagged again.
MODERATION: tuple[tuple[str, ModerationRule], ...] = (
    (
        "InputImageSensitiveContentDetected.PrivacyInformation",
        ModerationRule(
            ErrorCode.MODERATION_REAL_PERSON,
            "real_person",
            "an input image shows a real person's face, which the 2.x models refuse unless the person is an "
            "authorised asset: use an image without a real face, or register the person as an asset with the "
            "provider",
        ),
    ),
    (
        "InputTextSensitiveContentDetected",
        ModerationRule(ErrorCode.MODERATION_PROMPT, "prompt", "the prompt was flagged: reword it and upload again"),
    ),
    (
        "InputTextRiskDetection",
        ModerationRule(ErrorCode.MODERATION_PROMPT, "prompt", "the prompt was flagged: reword it and upload again"),
    ),
    (
        "InputImageSensitiveContentDetected",
        ModerationRule(ErrorCode.MODERATION_IMAGE, "image", "an input image was flagged: use another image"),
    ),
    (
        "InputImageRiskDetection",
        ModerationRule(ErrorCode.MODERATION_IMAGE, "image", "an input image was flagged: use another image"),
    ),
    (
        "InputVideoSensitiveContentDetected",
        ModerationRule(
            ErrorCode.MODERATION_INPUT_MEDIA, "input_video", "a reference video was flagged: use another video"
        ),
    ),
    (
        "InputAudioSensitiveContentDetected",
        ModerationRule(
            ErrorCode.MODERATION_INPUT_MEDIA, "input_audio", "a reference audio clip was flagged: use another clip"
        ),
    ),
    (
        "OutputVideoSensitiveContentDetected",
        ModerationRule(
            ErrorCode.MODERATION_OUTPUT_VIDEO,
            "output_video",
            "the generated video was flagged (a flagged output is not billed): a second try with another seed may "
            "pass; `seedance-pipeline jobs retry JOB_ID` sends one (unless the upload fixed its seed), or set "
            "ResubmitOnOutputModeration",
            Resubmit.NEW_SEED,
        ),
    ),
    (
        "OutputAudioSensitiveContentDetected",
        ModerationRule(
            ErrorCode.MODERATION_OUTPUT_AUDIO,
            "output_audio",
            "the generated audio was flagged: the same request without audio (generate_audio false) may pass, or "
            "set ResubmitOnOutputModeration to have it sent silent once",
            Resubmit.SILENT,
        ),
    ),
)
_MODERATION_WORD = re.compile(r"[A-Za-z]+(?:\.[A-Za-z]+)?")


def moderation_rule(*texts: str | None) -> tuple[str, ModerationRule] | None:
    """The provider code and rule for a failure whose code or text names a moderation code, else None."""
    words = {word for text in texts if text for word in _MODERATION_WORD.findall(text)}
    return next(((code, rule) for code, rule in MODERATION if code in words), None)
