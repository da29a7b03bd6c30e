"""Pydantic models shared by logic and adapters. No Lambda event shapes here (see triggers/upload_events.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from seedance_pipeline.redaction import redact_tokens

Resolution = Literal["480p", "720p", "1080p"]
Ratio = Literal["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21", "keep_ratio", "adaptive"]


# Every string a provider (or a failure) can make arbitrarily long is cut before it is stored or published: a job
# item must stay far below DynamoDB's 400 KB, or every save of it fails and the job dies for a false reason.
CUT_MARK = "…(cut)"
MAX_MESSAGE_CHARS = 2000
MAX_STATUS_CHARS = 100
MAX_NOTE_CHARS = 500
MAX_NOTES = 20
MAX_USAGE_FIELDS = 16
MAX_USAGE_KEY_CHARS = 64
_MAX_USAGE_NUMBER = 10**15
# DynamoDB stores no number of a smaller magnitude than 1e-130 (boto3 raises decimal.Underflow): a count or a cost
# this small is noise, and keeping it would make every later save of the job fail.
_MIN_USAGE_MAGNITUDE = 1e-100


def cut(text: str, limit: int) -> str:
    """`text` at most `limit` characters, ending with a visible mark when something was cut. Any callback token a
    provider echoed into it is removed first (a cut through a token would keep its start out of the redaction)."""
    text = redact_tokens(text)
    return text if len(text) <= limit else text[: limit - len(CUT_MARK)] + CUT_MARK


def bounded_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Provider usage is token counts: keep the finite numbers under short keys, a few of them, nothing else."""
    if usage is None:
        return None
    kept: dict[str, Any] = {}
    for key, value in usage.items():
        if len(kept) >= MAX_USAGE_FIELDS:
            break
        if not isinstance(key, str) or len(key) > MAX_USAGE_KEY_CHARS:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or abs(value) >= _MAX_USAGE_NUMBER or 0 < abs(value) < _MIN_USAGE_MAGNITUDE:
            continue
        kept[key] = value
    return kept


def _bounded_notes(notes: list[str]) -> list[str]:
    bounded = [cut(note, MAX_NOTE_CHARS) for note in notes]
    if len(bounded) > MAX_NOTES:
        bounded = [*bounded[: MAX_NOTES - 1], f"{CUT_MARK} {len(bounded) - MAX_NOTES + 1} more notes"]
    return bounded


Message = Annotated[str, AfterValidator(lambda text: cut(text, MAX_MESSAGE_CHARS))]
ProviderStatusText = Annotated[str, AfterValidator(lambda text: cut(text, MAX_STATUS_CHARS))]
Usage = Annotated[dict[str, Any] | None, AfterValidator(bounded_usage)]
Notes = Annotated[list[str], AfterValidator(_bounded_notes)]


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
    FINALIZED = "FINALIZED"  # a terminal job whose slot release and event were completed by this poll


def iso_time(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, the form sidecars and events carry."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


class DraftLink(BaseModel):
    """The approved draft a final is made from: its job, its task (sent as the `draft_task` item) and its sidecar."""

    model_config = ConfigDict(frozen=True)

    job_id: str = Field(max_length=64)
    task_id: str = Field(max_length=256)
    bucket: str | None = Field(default=None, max_length=63)
    sidecar_key: str | None = Field(default=None, max_length=1024)


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
    # The 2.x inputs (docs/inputs.md): a 2.5 task type, the container asked for, a 480p draft.
    task_type: str | None = None
    output_format: str = "mp4"
    draft: bool = False
    # A final: the draft it turns into the finished video (its request carries the `draft_task` item alone).
    draft_of: DraftLink | None = None


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

    @field_validator("version_id")
    @classmethod
    def _no_null_version(cls, value: str | None) -> str | None:
        # S3 names the version of an object written while versioning is off or suspended "null": that is no
        # version (every such write of the key is "null"), so it must never tell one upload from another.
        return None if value == "null" else value


class JobError(BaseModel):
    # An ErrorCode value, or the provider's own code for its refusals and throttles.
    code: ProviderStatusText
    message: Message


class Moderation(BaseModel):
    """What the provider's moderation flagged (prompt, image, real_person, input_video, input_audio, output_video,
    output_audio) and the provider's own code, so a person knows what to change."""

    what: str = Field(max_length=40)
    code: str = Field(max_length=100)


class JobOutputs(BaseModel):
    video_key: str
    last_frame_key: str | None = None
    sidecar_key: str
    bucket: str


class BatchRowRef(BaseModel):
    """What a job made from one row (and take) of a batch file carries instead of reading that file again: the row's
    images and its fields in the shape of S3 metadata, resolved by the same rules as a single upload's."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    batch_key: str
    row: int
    record_id: str
    take: int = 1
    takes: int = 1
    image_keys: list[str]
    mode: str
    overrides: dict[str, str] = Field(default_factory=dict)
    # A plain image with metadata `takes` is its own batch: its row's image is the upload itself, read (and
    # presigned) pinned to the version (or, unversioned, the ETag) the upload announced, so a take still queued when
    # the image is replaced is rejected, never made from the new picture. None on other rows, whose images are
    # other objects read by key, and on records written before these fields.
    image_version_id: str | None = None
    image_etag: str | None = None
    # Why the row was refused when the file was read: the poller rejects it with this reason, so the batch is
    # counted and closed by the functions that may write its report (the submit function writes no outputs).
    refusal: str | None = None


class Batch(BaseModel):
    """One DynamoDB item per batch upload (`#batch#<batch_id>`): the claim, the bulk write's progress, and the count
    of its jobs still live, which the job that ends last brings to zero (then the report is written once)."""

    batch_id: str
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    created_at: float
    rows: int
    jobs: int
    # One character per row: its number of takes (1-8); a refused row has one line in the report, take 1.
    row_takes: str
    # Jobs written so far, in file order (a resumed write starts here), and whether every one is written.
    written: int = 0
    all_written: bool = False
    # Jobs not yet terminal; decremented once per job as it ends.
    remaining: int
    refused_rows: int = 0
    estimated_tokens: int = 0
    writer_owner: str | None = None
    writer_until: float | None = None
    # Set together by the one completion claim, so `Batch Completed` is the same event whoever publishes it: the
    # counts by status and the tokens billed, and while the event is not yet known to be published, the lease of
    # whoever publishes it (a crash leaves the mark for a later finisher to take over once the lease ran out).
    completed_at: float | None = None
    counts: dict[str, int] | None = None
    billed_tokens: int | None = None
    publish_until: float | None = None


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
    provider_status: ProviderStatusText | None = None
    next_check_at: float | None = None
    checks: int = 0
    error: JobError | None = None
    # The latest transient problem (throttling, outage) of a live job, for operators; cleared on success.
    last_error: JobError | None = None
    delivery_attempts: int = 0
    outputs: JobOutputs | None = None
    usage: Usage = None
    # Provider tokens: the estimate recorded before the POST (rules/token_estimate.py), and the provider's own count
    # from its usage once the task succeeded.
    estimated_tokens: int | None = None
    billed_tokens: int | None = None
    # The last time the daily token budget held this job back: the WAITING age limit counts from here, so waiting
    # for the next UTC day never times a job out.
    budget_blocked_at: float | None = None
    notes: Notes = Field(default_factory=list)
    # What the pipeline repaired in the upload before sending it (HEIC converted, EXIF orientation applied, scaled
    # down): image_rules.changes_record entries, copied into the sidecar. A few short entries per image.
    input_changes: list[dict[str, Any]] = Field(default_factory=list)
    # The last moderation flag met, and how many new tasks ResubmitOnOutputModeration sent for this job (at most 1).
    moderation: Moderation | None = None
    resubmissions: int = 0
    # Set when a POST left our hands; a job found WAITING with this set may already be paid for.
    submission_started_at: float | None = None
    # The request carried a callback URL (never stored: its token is a secret), so the first status check can wait
    # longer; the provider's callback usually brings the check forward.
    expects_callback: bool = False
    # When a callback's hand-off last took the job for a status check: callbacks bring a check forward at most once
    # per interval (logic/callback_intake.HANDOFF_INTERVAL_SECONDS), whatever their bodies say.
    handoff_at: float | None = None
    # A terminal job whose slot release and event are not yet done: it stays in the due index until some poll
    # completes them, so a failure between the terminal save and the release can neither leak a slot nor lose
    # the event.
    finalize_pending: bool = False
    # The in-flight slot the job holds, recorded with the mark before the POST: whichever function ends the job
    # gives that slot back directly, without looking it up.
    slot: int | None = None
    # A job made from a batch file's row: the row it stands for, and whether its end was counted on the batch.
    batch: BatchRowRef | None = None
    batch_counted: bool = False
    lease_owner: str | None = None
    lease_until: float | None = None

    def bounded(self) -> Job:
        """This job with every length limit applied. model_copy(update=...) skips validators, so the savers call
        this: whatever was copied in (a provider's status, usage, a failure text) is cut before it is stored."""
        return Job.model_validate(self.model_dump())


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
# The sparse index of live jobs (template.yaml names it; only live jobs carry its key, `due_shard`).
DUE_INDEX = "due-jobs"
# A batch writer lives at most as long as its Lambda invocation, and writes nothing past its lease: so once its lease
# is this long gone it is dead, and no BatchWriteItem of its can still land on a row. Only then may another take the
# write over (a writer that stops of its own accord hands over at once). It must be at least the longest Timeout of a
# function that writes batch rows in template.yaml: PollFunction's 300 s (SubmitFunction's is 90 s);
# tests/integration/test_template.py fails if one grows past it.
WRITER_GRACE_SECONDS = 300.0
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
    raw_status: ProviderStatusText
    progress: ProviderStatusText | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    failure_reason: Message | None = None
    # The provider's own failure code where its answer carries one apart from the text (a moderation code).
    failure_code: ProviderStatusText | None = None
    usage: Usage = None
    # Present but unusable URL fields, e.g. a number where a URL belongs.
    malformed_url: bool = False


class TaskClaim(BaseModel):
    """What a provider callback's body says about its task, read by the dialect; never trusted on its own."""

    state: ProviderState | None = None
    task_id: str | None = None


class ObjectInfo(BaseModel):
    """What S3 says about an uploaded object, read together with its bytes."""

    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    metadata: dict[str, str]
