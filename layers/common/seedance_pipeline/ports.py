"""The typed seams between logic and the outside world.

Logic sees adapters only through these Protocols; the real adapters (adapters/) and the in-memory fakes of
the tests both implement them, mypy checks both sides, and a contract test runs the same cases on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

from seedance_pipeline.models import Batch, DueJob, Job, JobStatus, ObjectInfo, TaskClaim, TaskResult


class JobStorePort(Protocol):
    """The jobs table: one record per upload, leases, the sparse due index, in-flight slots."""

    due_shards: int

    def get(self, job_id: str) -> Job | None: ...
    def due_jobs(self, shard: str, now: float, *, page_size: int = 100) -> Iterable[DueJob]: ...
    def claim(self, job: Job, *, due_shard: str) -> None: ...
    def acquire_lease(self, job: Job | DueJob, *, owner: str, now: float, lease_seconds: float) -> Job: ...
    def lease_for_handoff(self, job: Job, *, owner: str, now: float, lease_seconds: float, not_since: float) -> Job: ...
    def record_check(
        self,
        job: DueJob,
        *,
        checks: int | None = None,
        status: JobStatus,
        provider_status: str,
        next_check_at: float,
        now: float,
        usage: dict[str, Any] | None = None,
    ) -> bool: ...
    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None: ...
    def put_unconditionally(self, job: Job, *, due_shard: str | None) -> None: ...
    def acquire_slot(self, job_id: str, limit: int, *, new_holder: bool = False) -> bool: ...
    def held_slot(self, job_id: str) -> int | None: ...
    def release_slot(self, job_id: str, *, slot: int | None = None) -> None: ...
    def slot_holders(self) -> set[str]: ...
    # The daily token budget: one counter item per UTC day. commit_tokens adds `tokens` only if the day's total
    # stays within `budget` (one conditional write, so concurrent commits never overshoot) and returns the new
    # total, else None; return_tokens gives back tokens of a POST that did not happen.
    def commit_tokens(self, day: str, tokens: int, *, budget: int) -> int | None: ...
    def return_tokens(self, day: str, tokens: int) -> None: ...
    def committed_tokens(self, day: str) -> int: ...
    def record_latest_upload(self, bucket: str, key: str, *, sequencer: str, job_id: str) -> bool: ...
    def latest_job_for(self, bucket: str, key: str) -> str | None: ...
    # A task found in the provider's list after a lost answer is adopted only through claim_task: False when a live
    # job's record holds that task id (the due index shows it) or another job claimed it first (one conditional
    # write, so two adopters never both win); True for job_id itself again. Only the rare lost-answer path calls it.
    def claim_task(self, task_id: str, job_id: str) -> bool: ...
    # Batches (adapters/batch_items.py): a batch record is created once (False: it exists); its writer holds a lease
    # (until `writer_until`, renewed with each progress record, conditioned on the owner) and records how many of
    # its jobs are written; until all are, stalled_batch_writes lists it, and take_batch_writer takes it, once its
    # writer's lease ran out WRITER_GRACE_SECONDS ago (one Query of the due index, under a shard no job uses). New
    # jobs go in bulk (`first_write` False: never over an existing one; nothing sent once `lease_left()` is not
    # positive: LeaseLost); a job's end is saved with its batch's live count taken down by one, once (the count
    # after, or None).
    # complete_batch claims the completion once, with the event's contents and a publisher's lease; while that mark
    # is set, take_batch_publisher takes an expired lease over (the batch, or None) and clear_batch_publish clears
    # it if `publish_until` is still the caller's.
    def create_batch(self, batch: Batch) -> bool: ...
    def get_batch(self, batch_id: str) -> Batch | None: ...
    def take_batch_writer(self, batch_id: str, *, owner: str, now: float, lease_seconds: float) -> Batch | None: ...
    def record_batch_progress(
        self, batch_id: str, *, owner: str, written: int, all_written: bool, writer_until: float
    ) -> bool: ...
    def stalled_batch_writes(self, now: float) -> list[str]: ...
    def put_new_jobs(
        self, jobs: list[tuple[Job, str | None, float | None]], *, first_write: bool, lease_left: Callable[[], float]
    ) -> None: ...
    def save_counting_batch(
        self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None
    ) -> int | None: ...
    def complete_batch(
        self, batch_id: str, *, now: float, counts: dict[str, int], billed_tokens: int, publish_until: float
    ) -> bool: ...
    def take_batch_publisher(self, batch_id: str, *, now: float, lease_seconds: float) -> Batch | None: ...
    def clear_batch_publish(self, batch_id: str, *, publish_until: float) -> bool: ...
    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]: ...


class JobCatalogPort(JobStorePort, Protocol):
    """The store as operators see it (list, show, retry, backfill): never used on a hot path."""

    def iter_jobs(self, *, status: JobStatus | None = None, page_size: int = 1000) -> Iterator[Job]: ...


class ObjectStoragePort(Protocol):
    """S3: read an upload with its metadata, presign it, stream results in, replace a previous job's outputs."""

    def read(
        self,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        version_id: str | None = None,
        etag: str | None = None,
        check_size: Callable[[int], None] | None = None,
    ) -> tuple[ObjectInfo, bytes]: ...
    def read_head(self, bucket: str, key: str, *, length: int) -> tuple[int, bytes]:
        """The object's size and its first `length` bytes (a signature), without reading the rest."""
        ...

    def head(self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None) -> ObjectInfo:
        """HeadObject of the announced object (pinned as `read` pins it): its size and metadata, no body. Raises
        ObjectGone when that object is not there."""
        ...

    def presign_get(self, bucket: str, key: str, *, version_id: str | None, expires_in: int) -> str: ...
    def upload_stream(self, stream: Readable, bucket: str, key: str, *, content_type: str) -> None: ...
    def put_json(self, bucket: str, key: str, document: dict[str, Any]) -> None: ...
    def read_json(self, bucket: str, key: str) -> dict[str, Any] | None: ...
    def read_json_tagged(self, bucket: str, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """read_json, and the ETag of the key's current object (None when the key has none) for replace_json."""
        ...

    def replace_json(self, bucket: str, key: str, document: dict[str, Any], *, etag: str | None) -> bool:
        """PUT the document only while the key's current object is still the one read (its ETag; None: the key
        has none). False, nothing written, when another writer got there first."""
        ...

    def current(self, bucket: str, key: str) -> ObjectInfo | None: ...
    def delete(self, bucket: str, key: str) -> None: ...


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class ResultStream(Readable, Protocol):
    """A capped, file-like body of a result being downloaded; read a part at a time."""

    def close(self) -> None: ...
    def __enter__(self) -> ResultStream: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ResultDownloaderPort(Protocol):
    """Follows a provider's result URL under the download rules (public https only, size cap, deadline).

    `deadline` is a time.monotonic() value by which the whole download must be done; None means a default budget.
    """

    def open(self, url: str, *, max_bytes: int, deadline: float | None = None) -> ResultStream: ...


class ProviderPort(Protocol):
    """The Seedance API, in either dialect: create a task, read it back, look one up, cancel one.

    `body` is the dialect's own request body (rules/video_request.provider_body_for builds it). `deadline` is a
    time.monotonic() value by which the call returns, retries included (None: unbounded but for the retry count).
    A submit that runs out of time before sending raises ProviderUnavailable; after sending, SubmissionUncertain.

    `find_task` answers the one task `body` created between `since` and `until` (unix seconds), or None when the
    dialect keeps no list (unified) or the list does not show exactly one. A listed task shows no prompt, images or
    callback URL, so it is recognised by the seed it shows: a body without a seed, or with -1, finds none.
    `cancel` stops a queued task: True when the provider accepted, False when the dialect cannot cancel (unified);
    a refusal raises PipelineError.
    """

    def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str: ...
    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult: ...
    def find_task(
        self, body: dict[str, Any], *, since: float, until: float, deadline: float | None = None
    ) -> str | None: ...
    def cancel(self, task_id: str, *, deadline: float | None = None) -> bool: ...


class EventPublisherPort(Protocol):
    """Tells downstream pipelines about terminal jobs."""

    def publish(self, job: Job) -> None: ...
    # `Batch Completed`, once per batch, when its last job ended and its report is written.
    def publish_batch(self, detail: dict[str, Any]) -> None: ...


class SecretTextPort(Protocol):
    """A secret string read from Secrets Manager and cached (the callback signing key). Raises SecretUnavailable
    while it cannot be read; never logs or returns anything but the value."""

    def get(self, *, force_fetch: bool = False) -> str: ...
    # The version before the current one (Secrets Manager's AWSPREVIOUS stage), cached like the current one; None
    # when there is none or it cannot be read. Tokens handed out before a rotation were signed with it.
    def previous(self) -> str | None: ...


class CallbackReaderPort(Protocol):
    """The dialect's own reading of a provider callback's body: the status it claims (None when unknown or
    unreadable) and the task it names. Only a hint: a status GET decides."""

    def read_claim(self, payload: dict[str, Any]) -> TaskClaim: ...


class CallbackHandoffPort(Protocol):
    """Hands a job whose callback claims it may be done to an asynchronous run of the callback function, so the
    provider is answered at once and the status check and delivery get the function's whole timeout."""

    def hand_off(self, job_id: str, *, function_name: str, task_id: str | None = None) -> None: ...
