"""Domain errors. Adapters translate ClientError codes and HTTP statuses into these; logic decides what they mean."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class; `code` is what lands in a job record's `error.code`."""

    code = "PIPELINE_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(PipelineError):
    """The upload or its metadata breaks a rule; the job is REJECTED and never retried."""

    code = "INVALID_INPUT"


class ProviderRejected(PipelineError):
    """The provider answered 400/404 for this request: retrying the same request cannot help."""

    code = "PROVIDER_REJECTED"


class ProviderThrottled(PipelineError):
    """429 after our own retries: try again on a later poll."""

    code = "PROVIDER_THROTTLED"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ProviderUnavailable(PipelineError):
    """5xx, timeouts, dropped connections or unreadable answers after our retries: try again later."""

    code = "PROVIDER_UNAVAILABLE"


class ProviderAuthError(PipelineError):
    """401/403: a configuration fault (wrong key, unpaid account). Jobs wait; an operator must act."""

    code = "PROVIDER_AUTH"


class SubmissionUncertain(PipelineError):
    """The provider may have accepted a task we never heard back about; resubmitting could pay twice."""

    code = "SUBMISSION_UNCERTAIN"


class DownloadRefused(PipelineError):
    """A result URL is not one we may follow (scheme, address, size)."""

    code = "DOWNLOAD_REFUSED"


class ResultExpired(PipelineError):
    """The provider's result URL answers 403/404: results are deleted after about 24 h."""

    code = "RESULT_EXPIRED"


class ResultUnavailable(PipelineError):
    """The result could not be fetched right now (network, 5xx): try again on a later poll."""

    code = "RESULT_UNAVAILABLE"


class LeaseLost(PipelineError):
    """Another worker holds or has finished this job; drop it quietly."""

    code = "LEASE_LOST"


class AlreadyClaimed(PipelineError):
    """A duplicate delivery of an upload that already has a job."""

    code = "ALREADY_CLAIMED"


class ObjectGone(PipelineError):
    """The uploaded object (at this version/ETag) no longer exists: deleted or overwritten since the event."""

    code = "OBJECT_GONE"
