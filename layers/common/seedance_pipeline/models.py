"""Pydantic models shared by logic and adapters. No Lambda event shapes here (see triggers/upload_events.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Resolution = Literal["480p", "720p", "1080p"]
Ratio = Literal["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21", "keep_ratio", "adaptive"]


class JobStatus(StrEnum):
    WAITING = "WAITING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT})
LIVE_STATUSES = frozenset(JobStatus) - TERMINAL_STATUSES


class UploadDisposition(StrEnum):
    """What the submit function did with an announced object that did not become a job status."""

    IGNORED = "IGNORED"  # not ours: outside the input prefix, a folder, an output
    DUPLICATE = "DUPLICATE"  # a repeated delivery of an upload that already has a job


class CheckDisposition(StrEnum):
    """What a poll did with a due job it could not move on."""

    LEASED = "LEASED"  # another invocation holds it
    ERROR = "ERROR"  # an unexpected fault; the lease expires and a later poll retries


def iso_time(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, the form sidecars and events carry."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


class VideoRequest(BaseModel):
    """The resolved provider request, minus the image bytes; stored on the job and in the sidecar."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    model: str
    resolution: Resolution
    ratio: Ratio
    duration: int
    watermark: bool
    camerafixed: bool
    return_last_frame: bool
    generate_audio: bool
    seed: int | None = None
    prompt_truncated: bool = False


class Upload(BaseModel):
    """One uploaded object, as an event announces it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None
    size: int | None = None
    event_time: str | None = None


class JobError(BaseModel):
    # An ErrorCode value, or the provider's own code for its refusals and throttles.
    code: str
    message: str


class JobOutputs(BaseModel):
    video_key: str
    last_frame_key: str | None = None
    sidecar_key: str
    bucket: str


class Job(BaseModel):
    """One DynamoDB item per upload."""

    job_id: str
    status: JobStatus
    source_bucket: str
    source_key: str
    source_version_id: str | None = None
    source_etag: str | None = None
    source_sequencer: str | None = None
    request: VideoRequest | None = None
    task_id: str | None = None
    attempts: int = 0
    created_at: float
    updated_at: float
    submitted_at: float | None = None
    finished_at: float | None = None
    provider_status: str | None = None
    next_check_at: float | None = None
    checks: int = 0
    error: JobError | None = None
    # The latest transient problem (throttling, outage) of a live job, for operators; cleared on success.
    last_error: JobError | None = None
    delivery_attempts: int = 0
    outputs: JobOutputs | None = None
    usage: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    # Set when a POST left our hands; a job found WAITING with this set may already be paid for.
    submission_started_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None


class DueJob(BaseModel):
    """A job as the due-jobs index holds it: only what the poller needs to pick it, order it and record a check
    that delivers nothing (the index projects these, not the whole record, so most job writes touch no index)."""

    job_id: str
    status: JobStatus
    created_at: float
    task_id: str | None = None
    submitted_at: float | None = None
    checks: int = 0
    next_check_at: float | None = None


# The attributes the due-jobs index projects besides its keys (template.yaml NonKeyAttributes).
DUE_INDEX_ATTRIBUTES = ("status", "created_at", "task_id", "submitted_at", "checks")


class ProviderState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class TaskResult(BaseModel):
    """A provider task as read by the client, normalised across gateway shapes."""

    task_id: str
    state: ProviderState
    raw_status: str
    progress: str | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    failure_reason: str | None = None
    usage: dict[str, Any] | None = None
    # Present but unusable URL fields, e.g. a number where a URL belongs.
    malformed_url: bool = False


class ObjectInfo(BaseModel):
    """What S3 says about an uploaded object, read together with its bytes."""

    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    metadata: dict[str, str]
