"""In-memory stand-ins for the adapters, with the same methods and the same conditional semantics."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from seedance_pipeline.adapters.budget_items import budget_item_expires_at, budget_item_id
from seedance_pipeline.errors import AlreadyClaimed, ErrorCode, InvalidInput, LeaseLost, ObjectGone, SubmissionUncertain
from seedance_pipeline.models import WRITER_GRACE_SECONDS, Batch, DueJob, Job, JobStatus, ObjectInfo, TaskResult
from seedance_pipeline.ports import (
    CallbackHandoffPort,
    EventPublisherPort,
    JobStorePort,
    ObjectStoragePort,
    ProviderPort,
    Readable,
    ResultDownloaderPort,
    SecretTextPort,
)
from seedance_pipeline.runtime import Runtime
from seedance_pipeline.settings import Settings

# The service limits the real adapters meet, so logic that would break them fails in unit tests too.
# A unified-dialect stack needs a base URL; the fakes never call it.
GATEWAY_URL = "https://gateway.test"
DYNAMODB_ITEM_LIMIT_BYTES = 400 * 1024
EVENTBRIDGE_ENTRY_LIMIT_BYTES = 256 * 1024


class ItemTooLarge(Exception):
    """What EventBridge answers to an entry over 256 KB (the store raises DynamoDB's own ValidationException)."""


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


DEFAULT_DUE_SHARDS = 2


class FakeStore:
    def __init__(
        self,
        due_shards: int = 2,
        *,
        clock: Callable[[], float] | None = None,
        slot_lifetime_seconds: float | None = None,
    ) -> None:
        self.due_shards = due_shards
        self.items: dict[str, dict[str, Any]] = {}
        # In-flight slot number -> holder, as JobStore keeps one small item per slot.
        self.slot_items: dict[int, str] = {}
        # With a clock and a lifetime, a slot expires as JobStore's do (its holder crashed): another job may take it.
        self._clock = clock
        self._slot_lifetime = slot_lifetime_seconds
        self.slot_expires_at: dict[int, int] = {}
        # The TTL attribute (`expires_at`) each bookkeeping item would carry in the jobs table, by its item id.
        self.expires_at: dict[str, int] = {}
        self.latest: dict[tuple[str, str], tuple[str, str]] = {}
        # UTC day -> tokens committed under the daily budget, as JobStore's `#budget#<day>` items hold them.
        self.committed: dict[str, int] = {}
        # Task id -> the job that adopted it after a lost answer, as JobStore's `#task#...` items hold them.
        self.task_claims: dict[str, str] = {}
        self.operations: list[str] = []
        # batch_id -> the batch record, as JobStore's `#batch#<id>` items hold it.
        self.batches: dict[str, dict[str, Any]] = {}
        # Set to fail put_new_jobs after this many jobs were written (a submit function dying half-way).
        self.crash_after_jobs: int | None = None
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        item = self.items.get(job_id)
        return Job.model_validate(item["job"]) if item else None

    def job(self, job_id: str | None) -> Job:
        """The stored job a test expects to exist (its id may come from an Optional outcome field)."""
        assert job_id is not None, "no job id"
        job = self.get(job_id)
        assert job is not None, f"no job {job_id}"
        return job

    def due_jobs(self, shard: str, now: float, *, page_size: int = 100) -> list[DueJob]:
        self.operations.append("Query")
        with self._lock:
            rows = [i for i in self.items.values() if i["due_shard"] == shard and i["job"]["next_check_at"] <= now]
        rows.sort(key=lambda i: i["job"]["next_check_at"])
        return [DueJob.model_validate(i["job"]) for i in rows]  # partial, as the index projects it

    def scan_jobs(
        self, *, status: JobStatus | None = None, page_size: int = 1000, start: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Pages in job id order; like DynamoDB, the status filter applies after the page is read."""
        self.operations.append("Scan")
        with self._lock:
            ids = sorted(job_id for job_id in self.items if start is None or job_id > start)
            page = ids[:page_size]
            jobs = [Job.model_validate(self.items[job_id]["job"]) for job_id in page]
        matching = [job for job in jobs if status is None or job.status == status]
        return matching, (page[-1] if len(ids) > page_size else None)

    def iter_jobs(self, *, status: JobStatus | None = None, page_size: int = 1000) -> Iterator[Job]:
        start: str | None = None
        while True:
            jobs, start = self.scan_jobs(status=status, page_size=page_size, start=start)
            yield from jobs
            if start is None:
                return

    def claim(self, job: Job, *, due_shard: str) -> None:
        with self._lock:
            _check_item_size(job)
            if job.job_id in self.items:
                raise AlreadyClaimed(job.job_id)
            self._put(job, due_shard)

    def acquire_lease(self, job: Job | DueJob, *, owner: str, now: float, lease_seconds: float) -> Job:
        with self._lock:
            item = self.items.get(job.job_id)
            current = item["job"] if item else None
            if current is None or current["status"] != job.status.value or (current.get("lease_until") or 0) >= now:
                raise LeaseLost(job.job_id)
            if _scheduled_later(current, job):
                raise LeaseLost(job.job_id)
            current["lease_owner"], current["lease_until"] = owner, now + lease_seconds
            return Job.model_validate(current)

    def lease_for_handoff(self, job: Job, *, owner: str, now: float, lease_seconds: float, not_since: float) -> Job:
        with self._lock:  # one conditional write, as JobStore's: the lease and the per-job hand-off cap together
            item = self.items.get(job.job_id)
            current = item["job"] if item else None
            if (
                current is None
                or current["status"] != job.status.value
                or (current.get("lease_until") or 0) >= now
                or (current.get("handoff_at") or 0) > not_since
                or _scheduled_later(current, job)
            ):
                raise LeaseLost(job.job_id)
            current["lease_owner"], current["lease_until"], current["handoff_at"] = owner, now + lease_seconds, now
            return Job.model_validate(current)

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
    ) -> bool:
        with self._lock:
            item = self.items.get(job.job_id)
            current = item["job"] if item else None
            if (
                item is None
                or current is None
                or item["due_shard"] is None
                or current["status"] != job.status.value
                or current["checks"] != job.checks
                or current.get("task_id") != job.task_id
                or current.get("next_check_at") != job.next_check_at
                or (current.get("lease_until") or 0) >= now
            ):
                return False
            current.update(
                checks=job.checks + 1 if checks is None else checks,
                status=status.value,
                provider_status=provider_status,
                next_check_at=next_check_at,
                updated_at=now,
                last_error=None,
            )
            if usage is not None:
                current["usage"] = usage
            return True

    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None:
        with self._lock:
            _check_item_size(job)
            item = self.items.get(job.job_id)
            if item is None or item["job"].get("lease_owner") != owner:
                raise LeaseLost(job.job_id)
            self._put(job, due_shard, expires_at)

    def put_unconditionally(self, job: Job, *, due_shard: str | None) -> None:
        with self._lock:
            _check_item_size(job)
            self._put(job, due_shard)

    @property
    def slots(self) -> set[str]:
        return set(self.slot_items.values())

    def acquire_slot(self, job_id: str, limit: int, *, new_holder: bool = False) -> bool:
        with self._lock:
            held = next((n for n, holder in self.slot_items.items() if holder == job_id), None)
            free = held if held is not None else next((n for n in range(limit) if self._slot_free(n)), None)
            if free is None:
                return False
            self.slot_items[free] = job_id
            if self._clock is not None and self._slot_lifetime is not None:
                self.slot_expires_at[free] = int(self._clock() + self._slot_lifetime)
            return True

    def _slot_free(self, slot: int) -> bool:
        if slot not in self.slot_items:
            return True
        # JobStore's condition: `expires_at < :now`, both whole seconds.
        expires = self.slot_expires_at.get(slot)
        return expires is not None and self._clock is not None and expires < int(self._clock())

    def slot_holders(self) -> set[str]:
        return self.slots

    def held_slot(self, job_id: str) -> int | None:
        with self._lock:
            return next((n for n, holder in self.slot_items.items() if holder == job_id), None)

    def release_slot(self, job_id: str, *, slot: int | None = None) -> None:
        # The hint only saves JobStore a look-up: the slot released is always the one job_id holds.
        with self._lock:
            for slot in [n for n, holder in self.slot_items.items() if holder == job_id]:
                del self.slot_items[slot]
                self.slot_expires_at.pop(slot, None)

    def commit_tokens(self, day: str, tokens: int, *, budget: int) -> int | None:
        with self._lock:
            total = self.committed.get(day, 0) + tokens
            if total > budget:
                return None
            self.committed[day] = total
            self.expires_at[budget_item_id(day)] = budget_item_expires_at(day)
            return total

    def return_tokens(self, day: str, tokens: int) -> None:
        with self._lock:
            self.committed[day] = self.committed.get(day, 0) - tokens
            self.expires_at[budget_item_id(day)] = budget_item_expires_at(day)

    def committed_tokens(self, day: str) -> int:
        return self.committed.get(day, 0)

    def record_latest_upload(self, bucket: str, key: str, *, sequencer: str, job_id: str) -> bool:
        with self._lock:
            known = self.latest.get((bucket, key))
            if known and int(known[0], 16) > int(sequencer, 16):
                return False
            self.latest[(bucket, key)] = (sequencer, job_id)
            return True

    def latest_job_for(self, bucket: str, key: str) -> str | None:
        known = self.latest.get((bucket, key))
        return known[1] if known else None

    def claim_task(self, task_id: str, job_id: str) -> bool:
        """As JobStore: refused while a live (indexed) job holds the task, or another job claimed it first."""
        self.operations.append("ClaimTask")
        with self._lock:
            held = any(
                item["due_shard"] is not None and item["job"].get("task_id") == task_id and other != job_id
                for other, item in self.items.items()
            )
            return not held and self.task_claims.setdefault(task_id, job_id) == job_id

    # --- batches ---------------------------------------------------------------------------------------------
    def create_batch(self, batch: Batch) -> bool:
        with self._lock:
            if batch.batch_id in self.batches:
                return False
            self.batches[batch.batch_id] = batch.model_dump(mode="json")
            return True

    def get_batch(self, batch_id: str) -> Batch | None:
        with self._lock:
            item = self.batches.get(batch_id)
            return Batch.model_validate(item) if item else None

    def take_batch_writer(self, batch_id: str, *, owner: str, now: float, lease_seconds: float) -> Batch | None:
        with self._lock:
            item = self.batches.get(batch_id)
            # As JobStore's: only once the writer's lease is WRITER_GRACE_SECONDS gone (the writer is surely dead).
            if item is None or item["all_written"] or (item.get("writer_until") or 0) >= now - WRITER_GRACE_SECONDS:
                return None
            item.update(writer_owner=owner, writer_until=now + lease_seconds)
            return Batch.model_validate(item)

    def record_batch_progress(
        self, batch_id: str, *, owner: str, written: int, all_written: bool, writer_until: float
    ) -> bool:
        with self._lock:
            item = self.batches.get(batch_id)
            if item is None or item.get("writer_owner") != owner:
                return False
            item.update(written=written, all_written=all_written)
            if not all_written:
                item["writer_until"] = writer_until
            return True

    def stalled_batch_writes(self, now: float) -> list[str]:
        """As JobStore's Query of the due index's batch-writes shard: records not all written whose writer's lease
        ran out WRITER_GRACE_SECONDS ago, soonest first."""
        self.operations.append("Query")
        with self._lock:
            due = [
                (item["writer_until"], batch_id)
                for batch_id, item in self.batches.items()
                if not item["all_written"]
                and item.get("writer_until") is not None
                and item["writer_until"] + WRITER_GRACE_SECONDS <= now
            ]
        return [batch_id for _, batch_id in sorted(due)]

    def put_new_jobs(
        self, jobs: list[tuple[Job, str | None, float | None]], *, first_write: bool, lease_left: Callable[[], float]
    ) -> None:
        if lease_left() <= 0:
            raise LeaseLost("the batch writer's lease ran out before these rows were sent")
        with self._lock:
            for job, due_shard, expires_at in jobs:
                if self.crash_after_jobs is not None:
                    if self.crash_after_jobs <= 0:
                        raise RuntimeError("the submit function died half-way through the batch")
                    self.crash_after_jobs -= 1
                _check_item_size(job)
                if not first_write and job.job_id in self.items:
                    continue
                self.operations.append(f"put_new_job {job.job_id}")
                self._put(job, due_shard, expires_at)

    def save_counting_batch(
        self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None
    ) -> int | None:
        assert job.batch is not None
        with self._lock:
            _check_item_size(job)
            item = self.items.get(job.job_id)
            if item is None or item["job"].get("lease_owner") != owner:
                raise LeaseLost(job.job_id)
            batch = self.batches.get(job.batch.batch_id)
            if batch is None:
                return None
            self._put(job.model_copy(update={"batch_counted": True}), due_shard, expires_at)
            batch["remaining"] -= 1
            return int(batch["remaining"])

    def complete_batch(
        self, batch_id: str, *, now: float, counts: dict[str, int], billed_tokens: int, publish_until: float
    ) -> bool:
        with self._lock:
            item = self.batches.get(batch_id)
            if item is None or item.get("completed_at") is not None:
                return False
            item.update(completed_at=now, counts=dict(counts), billed_tokens=billed_tokens, publish_until=publish_until)
            return True

    def take_batch_publisher(self, batch_id: str, *, now: float, lease_seconds: float) -> Batch | None:
        with self._lock:
            item = self.batches.get(batch_id)
            if item is None or item.get("publish_until") is None or item["publish_until"] >= now:
                return None
            item["publish_until"] = now + lease_seconds
            return Batch.model_validate(item)

    def clear_batch_publish(self, batch_id: str, *, publish_until: float) -> bool:
        with self._lock:
            item = self.batches.get(batch_id)
            if item is None or item.get("publish_until") != publish_until:
                return False
            item["publish_until"] = None
            return True

    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        return {job_id: job for job_id in job_ids if (job := self.get(job_id)) is not None}

    def _put(self, job: Job, due_shard: str | None, expires_at: float | None = None) -> None:
        data = job.model_dump(mode="json")
        live = due_shard is not None and job.next_check_at is not None
        if not live:
            # JobStore keeps next_check_at only on indexed items: it is the due index's sort key.
            data["next_check_at"] = None
        self.items[job.job_id] = {"job": data, "due_shard": due_shard if live else None, "expires_at": expires_at}

    def jobs(self) -> list[Job]:
        return [Job.model_validate(i["job"]) for i in self.items.values()]


def _check_item_size(job: Job) -> None:
    """Refuse a job DynamoDB would refuse, with the error the service (and moto) sends."""
    if _dynamodb_size(job.model_dump(mode="json", exclude_none=True)) > DYNAMODB_ITEM_LIMIT_BYTES:
        raise ClientError(
            {
                "Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"},
                "ResponseMetadata": {
                    "RequestId": "fake-store",
                    "HostId": "",
                    "HTTPStatusCode": 400,
                    "HTTPHeaders": {},
                    "RetryAttempts": 0,
                },
            },
            "PutItem",
        )


def _dynamodb_size(value: Any) -> int:
    """An item's size by DynamoDB's rules: UTF-8 names and strings, about one byte per two digits of a number,
    three bytes of overhead plus one per element for maps and lists."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float):
        digits = len(Decimal(repr(value)).normalize().as_tuple().digits)
        return (digits + 1) // 2 + 1
    if isinstance(value, dict):
        return 3 + sum(len(k.encode()) + _dynamodb_size(v) + 1 for k, v in value.items())
    if isinstance(value, list):
        return 3 + sum(_dynamodb_size(v) + 1 for v in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


class FakeStorage:
    """S3 as ObjectStorage sees it (tests/integration/test_object_storage_contract.py holds both to one contract).
    `objects` are what tests put in (uploads, with metadata and an ETag), `uploads` what the pipeline wrote; both are
    one namespace to the reads, as in a bucket."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, dict[str, str], str]] = {}
        self.uploads: dict[tuple[str, str], bytes] = {}
        self.reads = 0
        # Buckets with versioning on: every add keeps a version, and a read may ask for an older one by its id.
        self.versioned_buckets: set[str] = set()
        self.versions: dict[tuple[str, str], dict[str, tuple[bytes, dict[str, str], str]]] = {}
        self.head_reads = 0
        self.heads = 0  # HeadObject requests (`head`): metadata only

    def add(
        self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None, etag: str = "e1"
    ) -> str | None:
        """Put an object as an upload would; returns its version id in a versioned bucket (else None)."""
        stored = (data, metadata or {}, etag)
        self.objects[(bucket, key)] = stored
        self.uploads.pop((bucket, key), None)
        if bucket not in self.versioned_buckets:
            return None
        version_id = uuid.uuid4().hex
        self.versions.setdefault((bucket, key), {})[version_id] = stored
        return version_id

    def _stored(self, bucket: str, key: str) -> tuple[bytes, dict[str, str], str] | None:
        if (bucket, key) in self.objects:
            return self.objects[(bucket, key)]
        if (bucket, key) in self.uploads:
            data = self.uploads[(bucket, key)]
            return data, {}, hashlib.md5(data).hexdigest()
        return None

    def read(
        self,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        version_id: str | None = None,
        etag: str | None = None,
        check_size: Callable[[int], None] | None = None,
    ) -> tuple[ObjectInfo, bytes]:
        self.reads += 1
        info, data = self._pinned(bucket, key, version_id, etag)
        if check_size:
            check_size(len(data))
        if len(data) > max_bytes:
            raise InvalidInput(f"the object is larger than {max_bytes} bytes", code=ErrorCode.IMAGE_TOO_LARGE)
        return info, data

    def _pinned(self, bucket: str, key: str, version_id: str | None, etag: str | None) -> tuple[ObjectInfo, bytes]:
        versioned = bucket in self.versioned_buckets
        if version_id and versioned:
            stored = self.versions.get((bucket, key), {}).get(version_id)
        else:
            # Unversioned, a version id is not checked here (S3 would refuse it; the pipeline only has one from a
            # versioned bucket's event).
            stored = self._stored(bucket, key)
            if stored is not None and versioned:
                version_id = next(
                    (v for v, kept in reversed(self.versions.get((bucket, key), {}).items()) if kept is stored), None
                )
        if stored is None or (etag and stored[2] != etag):
            raise ObjectGone(f"s3://{bucket}/{key} is gone")
        data, metadata, stored_etag = stored
        # S3 sends user metadata keys back in lower case, whatever case they were written in.
        info = ObjectInfo(
            size=len(data),
            content_type=None,
            etag=stored_etag,
            version_id=version_id if versioned else None,
            metadata={name.lower(): value for name, value in metadata.items()},
        )
        return info, data

    def head(self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None) -> ObjectInfo:
        """As HeadObject pinned like `read`: the announced object's size and metadata, or ObjectGone."""
        self.heads += 1
        return self._pinned(bucket, key, version_id, etag)[0]

    def read_head(self, bucket: str, key: str, *, length: int) -> tuple[int, bytes]:
        """As a ranged GET: the object's whole size and its first `length` bytes."""
        stored = self._stored(bucket, key)
        if stored is None:
            raise ObjectGone(f"s3://{bucket}/{key} is gone")
        self.head_reads += 1
        return len(stored[0]), stored[0][:length]

    def presign_get(self, bucket: str, key: str, *, version_id: str | None, expires_in: int) -> str:
        return f"https://example-bucket.s3.amazonaws.com/{key}?X-Amz-Signature=fake"

    def upload_stream(self, stream: Readable, bucket: str, key: str, *, content_type: str) -> None:
        _refuse_long_key(key, "CompleteMultipartUpload")
        chunks: list[bytes] = []
        while chunk := stream.read(1024 * 1024):
            chunks.append(chunk)
        self.objects.pop((bucket, key), None)
        self.uploads[(bucket, key)] = b"".join(chunks)

    def put_json(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        _refuse_long_key(key, "PutObject")
        self.objects.pop((bucket, key), None)
        self.uploads[(bucket, key)] = json.dumps(document).encode()

    def read_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        """As ObjectStorage: None when there is no object, or it is not a JSON object (whoever wrote it)."""
        return self.read_json_tagged(bucket, key)[0]

    def read_json_tagged(self, bucket: str, key: str) -> tuple[dict[str, Any] | None, str | None]:
        stored = self._stored(bucket, key)
        if stored is None:
            return None, None
        try:
            document = json.loads(stored[0])
        except ValueError:  # UnicodeDecodeError is one too
            return None, stored[2]
        return (document if isinstance(document, dict) else None), stored[2]

    def replace_json(self, bucket: str, key: str, document: dict[str, Any], *, etag: str | None) -> bool:
        """As S3's conditional PUT: written only while the key's current object has the ETag read (None: none)."""
        stored = self._stored(bucket, key)
        if (stored[2] if stored is not None else None) != etag:
            return False
        self.put_json(bucket, key, document)
        return True

    def current(self, bucket: str, key: str) -> ObjectInfo | None:
        """As HeadObject: the key's current object (its ETag and, in a versioned bucket, its version id), or None."""
        stored = self._stored(bucket, key)
        if stored is None:
            return None
        data, metadata, etag = stored
        version_id = next(
            (v for v, kept in reversed(self.versions.get((bucket, key), {}).items()) if kept is stored), None
        )
        return ObjectInfo(
            size=len(data),
            content_type=None,
            etag=etag,
            version_id=version_id if bucket in self.versioned_buckets else None,
            metadata={name.lower(): value for name, value in metadata.items()},
        )

    def delete(self, bucket: str, key: str) -> None:
        self.uploads.pop((bucket, key), None)
        self.objects.pop((bucket, key), None)


def _refuse_long_key(key: str, operation: str) -> None:
    """S3 refuses keys over 1,024 bytes of UTF-8, and so does the fake."""
    if len(key.encode()) > 1024:
        error = {"Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"}}
        raise ClientError(error, operation)  # type: ignore[arg-type]


class FakeProvider:
    """Scripted provider: tasks finish after `ready_after` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, *, ready_after: float = 45.0) -> None:
        self.clock = clock
        self.ready_after = ready_after
        self.tasks: dict[str, dict[str, Any]] = {}
        self.submissions: list[dict[str, Any]] = []
        self.gets = 0
        self.submit_error: Exception | None = None
        self.get_error: Exception | None = None
        self.outcome: dict[str, Any] = {"state": "SUCCEEDED"}
        # Outcomes of particular tasks (by task id), over `outcome`: a first task flagged, its resubmission not.
        self.outcome_for: dict[str, dict[str, Any]] = {}
        # What a task not yet ready reports: RUNNING, or PENDING for a task still queued.
        self.unready_state = "RUNNING"
        # Ark-like behaviour, off by default (a unified gateway lists nothing and cancels nothing). `can_list`: the
        # tasks are listed as Ark's list shows them (task_document); `listed_task_id` plants the one task a look-up
        # finds whatever the body (as if its seed had collided with another task's).
        self.can_list = False
        self.listed_task_id: str | None = None
        # The next POSTs make (and bill) their task, then the answer is lost: SubmissionUncertain.
        self.lose_answers_next = 0
        self.can_cancel = False
        self.cancel_error: Exception | None = None
        self.cancels: list[str] = []
        self.cancelled: set[str] = set()
        self.lookups: list[tuple[dict[str, Any], float, float]] = []
        # The deadline of every call, as seconds left when it was made (None: the caller gave none).
        self.submit_budgets: list[float | None] = []
        self.get_budgets: list[float | None] = []
        self._lock = threading.Lock()

    def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str:
        self.submit_budgets.append(None if deadline is None else deadline - time.monotonic())
        if self.submit_error:
            raise self.submit_error
        with self._lock:
            task_id = f"cgt-{len(self.submissions) + 1:05d}"
            self.submissions.append(body)
            self.tasks[task_id] = {"body": body, "at": self.clock()}
            lost, self.lose_answers_next = self.lose_answers_next > 0, max(0, self.lose_answers_next - 1)
        if lost:
            raise SubmissionUncertain("no answer within the read timeout; the provider may have created the task")
        return task_id

    def task_document(self, task_id: str) -> dict[str, Any]:
        """A task as Ark's Get and List show it: its settings and the seed it was made with (one drawn when the
        body sent none or -1), and neither the prompt, the images nor `callback_url`."""
        task = self.tasks[task_id]
        body = task["body"]
        seed = body.get("seed")
        if seed is None or seed == -1:
            seed = int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) % 2**31
        ratio = body.get("ratio")
        return {
            "id": task_id,
            "model": body.get("model"),
            "status": "queued",
            "created_at": int(task["at"]),
            "resolution": body.get("resolution"),
            "ratio": "16:9" if ratio in ("adaptive", "keep_ratio") else ratio,  # the platform reports its choice
            "duration": body.get("duration"),
            "seed": seed,
        }

    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
        self.get_budgets.append(None if deadline is None else deadline - time.monotonic())
        self.gets += 1
        if self.get_error:
            raise self.get_error
        task = self.tasks[task_id]
        if task_id in self.cancelled:
            return TaskResult(task_id=task_id, state="FAILED", raw_status="cancelled", failure_reason="cancelled")
        if self.clock() - task["at"] < self.ready_after:
            raw = "IN_PROGRESS" if self.unready_state == "RUNNING" else "queued"
            return TaskResult(task_id=task_id, state=self.unready_state, raw_status=raw)
        outcome = self.outcome_for.get(task_id, self.outcome)
        state = outcome["state"]
        return TaskResult(
            task_id=task_id,
            state=state,
            raw_status="SUCCESS" if state == "SUCCEEDED" else "FAILURE",
            video_url=outcome.get("video_url", f"https://cdn.example.com/{task_id}.mp4"),
            last_frame_url=outcome.get("last_frame_url"),
            failure_reason=outcome.get("failure_reason"),
            failure_code=outcome.get("failure_code"),
            usage=outcome.get("usage"),
        )

    def find_task(
        self, body: dict[str, Any], *, since: float, until: float, deadline: float | None = None
    ) -> str | None:
        """The one listed task that matches `body` in the window by what the list shows (the client's own rule,
        ark_dialect.matches), else None; `listed_task_id` when a test planted one (registered for get)."""
        self.lookups.append((body, since, until))
        if self.listed_task_id is not None:
            with self._lock:
                self.tasks.setdefault(self.listed_task_id, {"body": body, "at": self.clock()})
            return self.listed_task_id
        if not self.can_list:
            return None
        from seedance_pipeline.adapters.ark_dialect import matches

        with self._lock:
            listed = [self.task_document(task_id) for task_id in self.tasks]
        found = [item["id"] for item in listed if matches(item, body, since=since, until=until)]
        return found[0] if len(found) == 1 else None

    def cancel(self, task_id: str, *, deadline: float | None = None) -> bool:
        if not self.can_cancel:
            return False
        if self.cancel_error:
            raise self.cancel_error
        self.cancels.append(task_id)
        self.cancelled.add(task_id)  # as Ark: the task now reads `cancelled`
        return True


class FakeDownloader:
    def __init__(self, bodies: dict[str, bytes] | None = None, error: Exception | None = None) -> None:
        self.bodies = bodies or {}
        self.default = b"\x00\x00\x00\x18ftypmp42fake-video"
        self.error = error
        self.deadlines: list[float | None] = []

    def open(self, url: str, *, max_bytes: int, deadline: float | None = None) -> io.BytesIO:
        self.deadlines.append(deadline)
        if self.error:
            raise self.error
        return io.BytesIO(self.bodies.get(url, self.default))


class RecordingEvents:
    def __init__(self) -> None:
        self.published: list[Job] = []
        self.batches: list[dict[str, Any]] = []

    def publish_batch(self, detail: dict[str, Any]) -> None:
        json.dumps(detail)  # what the real publisher sends must be JSON
        self.batches.append(detail)

    def publish(self, job: Job) -> None:
        from seedance_pipeline.adapters.job_events import detail_json

        size = len(detail_json(job).encode())
        if size > EVENTBRIDGE_ENTRY_LIMIT_BYTES:
            raise ItemTooLarge(f"the event entry is over 256 KB ({size} bytes)")
        self.published.append(job)


class FakeSecretText:
    """A Secrets Manager secret string (the callback signing key); `error` makes every read fail.

    `fresh_value` is a value put in the secret that this container's cache has not seen: only a forced read gets
    it. `previous_value` is the version before the current one (AWSPREVIOUS)."""

    def __init__(self, value: str = "k" * 64, error: Exception | None = None) -> None:
        self.value = value
        self.error = error
        self.reads = 0
        self.forced_reads = 0
        self.fresh_value: str | None = None
        self.previous_value: str | None = None

    def get(self, *, force_fetch: bool = False) -> str:
        self.reads += 1
        if self.error:
            raise self.error
        if force_fetch:
            self.forced_reads += 1
            if self.fresh_value is not None:
                self.previous_value, self.value, self.fresh_value = self.value, self.fresh_value, None
        return self.value

    def previous(self) -> str | None:
        return None if self.error else self.previous_value


class FakeHandoff:
    """The asynchronous self-invoke: it queues the hand-off events Lambda would deliver; a test delivers them."""

    def __init__(self, error: Exception | None = None) -> None:
        self.queued: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def hand_off(self, job_id: str, *, function_name: str, task_id: str | None = None) -> None:
        from seedance_pipeline.triggers.callback_events import handoff_event

        if self.error:
            raise self.error
        self.queued.append((function_name, handoff_event(job_id, task_id)))

    def take(self) -> list[dict[str, Any]]:
        events, self.queued = [event for _, event in self.queued], []
        return events


# mypy checks here that each fake implements its port; make_runtime checks it again by building a Runtime.
_store_port: type[JobStorePort] = FakeStore
_storage_port: type[ObjectStoragePort] = FakeStorage
_provider_port: type[ProviderPort] = FakeProvider
_downloader_port: type[ResultDownloaderPort] = FakeDownloader
_events_port: type[EventPublisherPort] = RecordingEvents
_secret_port: type[SecretTextPort] = FakeSecretText
_handoff_port: type[CallbackHandoffPort] = FakeHandoff


@dataclass
class FakeRuntime(Runtime):
    """A Runtime whose clock, downloader and events are the fakes, so tests can drive and inspect them."""

    clock: FakeClock
    downloader: FakeDownloader
    events: RecordingEvents


S = TypeVar("S", bound=FakeStore)


def make_runtime_with(
    store_type: type[S], clock: FakeClock | None = None, **settings: Any
) -> tuple[FakeRuntime, S, FakeStorage, FakeProvider]:
    """make_runtime with a FakeStore subclass of the test's own (one that counts or refuses some calls)."""
    store = store_type(due_shards=settings.get("due_index_shards", DEFAULT_DUE_SHARDS))
    runtime, _, storage, provider = make_runtime(clock, store=store, **settings)
    return runtime, store, storage, provider


def make_runtime(
    clock: FakeClock | None = None,
    *,
    provider: FakeProvider | None = None,
    storage: FakeStorage | None = None,
    store: FakeStore | None = None,
    **settings: Any,
) -> tuple[FakeRuntime, FakeStore, FakeStorage, FakeProvider]:
    clock = clock or FakeClock()
    fields: dict[str, Any] = {
        "jobs_table_name": "jobs",
        "input_bucket": "in-bucket",
        "due_index_shards": DEFAULT_DUE_SHARDS,
        "api_base_url": GATEWAY_URL,
    }
    fields.update(settings)
    store, storage = store or FakeStore(due_shards=fields["due_index_shards"]), storage or FakeStorage()
    chosen_provider = provider or FakeProvider(clock)
    parsed = Settings(**fields)
    # The dialect's own reading of callback bodies: pure code, the same the deployed function runs.
    from seedance_pipeline.adapters.ark_dialect import ArkDialect
    from seedance_pipeline.adapters.unified_dialect import UnifiedDialect

    runtime = FakeRuntime(
        settings=parsed,
        store=store,
        storage=storage,
        downloader=FakeDownloader(),
        provider_factory=lambda _force: chosen_provider,
        events=RecordingEvents(),
        clock=clock,
        sleep=clock.advance,
        signing_key=FakeSecretText() if parsed.callback_signing_secret_id else None,
        callback_reader=ArkDialect() if parsed.provider_api == "ark" else UnifiedDialect(),
        handoff=FakeHandoff(),
    )
    return runtime, store, storage, chosen_provider


def _scheduled_later(current: dict[str, Any], read: Job | DueJob) -> bool:
    """As JobStore's lease condition: the job's next check was put later than the time read (or it finished)."""
    if read.next_check_at is None:
        return False
    return current.get("next_check_at") is None or current["next_check_at"] > read.next_check_at
