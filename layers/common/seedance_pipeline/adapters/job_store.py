"""DynamoDB adapter for the jobs table: claims, leases, the sparse due-jobs index and in-flight slots.

In-flight slots are in slot_items.py, the daily token budget's counters in budget_items.py.

Due index. It projects only DueJob's fields, so a lease, the pre-submission mark or a delivery note costs no index
write; `record_check` records a status check that delivers nothing without a lease (1 WCU + 2 index writes, where
lease + save cost 5). Bookkeeping items (`#latest#...`, `#slot#...`, `#task#...`) carry the table's TTL
attribute.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from seedance_pipeline.adapters.batch_items import BatchItems
from seedance_pipeline.adapters.batch_store import BatchMethods
from seedance_pipeline.adapters.budget_items import DailyBudgetCounters
from seedance_pipeline.adapters.dynamo_codec import (
    deserialize,
    is_condition_failure,
    lease_held,
    serialize,
    serialize_value,
    update_if,
)
from seedance_pipeline.adapters.slot_items import InFlightSlots
from seedance_pipeline.adapters.task_claims import TaskClaims
from seedance_pipeline.errors import AlreadyClaimed, LeaseLost
from seedance_pipeline.models import DUE_INDEX, DueJob, Job, JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Job ids are hex; the table's other items (the in-flight slots, the newest upload per key) start with this.
BOOKKEEPING_ID_PREFIX = "#"
# Defaults for a store built without settings (operator tools): MaxJobAgeMinutes' default plus margins.
DEFAULT_SLOT_LIFETIME_SECONDS = 2 * 120 * 60 + 3600
DEFAULT_BOOKKEEPING_LIFETIME_SECONDS = 120 * 60 + 30 * 86400


def comparable_sequencer(sequencer: str) -> str:
    """S3 sequencers of one key order by hex value once left-padded to equal length (S3 docs)."""
    return sequencer.upper().rjust(64, "0")


def latest_upload_item_id(bucket: str, key: str) -> str:
    return "#latest#" + hashlib.sha256(f"{bucket}\n{key}".encode()).hexdigest()[:40]


class JobStore(BatchMethods):
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        due_shards: int,
        slot_lifetime_seconds: float = DEFAULT_SLOT_LIFETIME_SECONDS,
        bookkeeping_lifetime_seconds: float = DEFAULT_BOOKKEEPING_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client
        self.due_shards = due_shards
        self._bookkeeping_lifetime = bookkeeping_lifetime_seconds
        self._clock = clock
        self._slots = InFlightSlots(table_name, client, slot_lifetime_seconds=slot_lifetime_seconds, clock=clock)
        self._budget = DailyBudgetCounters(table_name, client)
        self._task_claims = TaskClaims(
            table_name, client, due_shards=due_shards, lifetime_seconds=bookkeeping_lifetime_seconds, clock=clock
        )
        self._batches = BatchItems(
            table_name,
            client,
            job_item=lambda job, shard, expires: self._item(job, due_shard=shard, expires_at=expires),
            lifetime_seconds=bookkeeping_lifetime_seconds,
        )

    # --- reads -------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Job.model_validate(self._job_fields(deserialize(item))) if item else None

    def due_jobs(self, shard: str, now: float, *, page_size: int = 100) -> Iterator[DueJob]:
        """Live jobs whose next check is due, oldest first, from the sparse index (never a Scan); partial: the
        index projects only DueJob's fields, and acquire_lease returns the whole record."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_shard = :shard AND next_check_at <= :now",
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": {"N": repr(now)}},
            "Limit": page_size,
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                yield DueJob.model_validate(self._job_fields(deserialize(item)))
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def scan_jobs(
        self, *, status: JobStatus | None = None, page_size: int = 1000, start: str | None = None
    ) -> tuple[list[Job], str | None]:
        """One page of a Scan over the job records (never the bookkeeping items), optionally of one status.

        For operator tools only: a Scan reads the whole table. Returns the page's jobs and the job id to pass as
        ``start`` for the next page, None after the last one. DynamoDB filters after it reads ``page_size``
        items, so a page can hold fewer jobs than that, even none, before the end.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "NOT begins_with(job_id, :bookkeeping)",
            "ExpressionAttributeValues": {":bookkeeping": {"S": BOOKKEEPING_ID_PREFIX}},
            "Limit": page_size,
        }
        if status is not None:
            kwargs["FilterExpression"] += " AND #status = :status"
            kwargs["ExpressionAttributeNames"] = {"#status": "status"}
            kwargs["ExpressionAttributeValues"][":status"] = {"S": status.value}
        if start is not None:
            kwargs["ExclusiveStartKey"] = {"job_id": {"S": start}}
        response = self._client.scan(**kwargs)
        jobs = [Job.model_validate(self._job_fields(deserialize(item))) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return jobs, (last["job_id"]["S"] if last else None)

    def iter_jobs(self, *, status: JobStatus | None = None, page_size: int = 1000) -> Iterator[Job]:
        """Every job record, page by page (see scan_jobs)."""
        start: str | None = None
        while True:
            jobs, start = self.scan_jobs(status=status, page_size=page_size, start=start)
            yield from jobs
            if start is None:
                return

    # --- writes ------------------------------------------------------------------------------------
    def claim(self, job: Job, *, due_shard: str) -> None:
        """Create the job once; a duplicate delivery of the same upload raises AlreadyClaimed."""
        item = self._item(job, due_shard=due_shard)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise AlreadyClaimed(f"job {job.job_id} exists already") from exc
            raise

    def acquire_lease(self, job: Job | DueJob, *, owner: str, now: float, lease_seconds: float) -> Job:
        """Take the job for this worker unless another holds an unexpired lease or has moved it on: its status
        changed, or its next check was put later than the time read (another worker scheduled it since, e.g. a
        delivery retry after a failed attempt, which a stale read must not bring forward)."""
        condition, values = _lease_condition(job, owner=owner, now=now, lease_seconds=lease_seconds)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job.job_id}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LeaseLost(f"job {job.job_id} is leased or has moved on") from exc
            raise
        return Job.model_validate(self._job_fields(deserialize(response["Attributes"])))

    def lease_for_handoff(self, job: Job, *, owner: str, now: float, lease_seconds: float, not_since: float) -> Job:
        """acquire_lease for a callback's hand-off, which also needs no other hand-off since `not_since`: the lease
        and the per-job cap on hand-offs are one conditional write."""
        condition, values = _lease_condition(job, owner=owner, now=now, lease_seconds=lease_seconds)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job.job_id}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until, handoff_at = :now",
                ConditionExpression=condition + " AND (attribute_not_exists(handoff_at) OR handoff_at <= :since)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={**values, ":since": {"N": repr(not_since)}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LeaseLost(f"job {job.job_id} is leased, has moved on or was handed off lately") from exc
            raise
        return Job.model_validate(self._job_fields(deserialize(response["Attributes"])))

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
        """Record status checks that delivered nothing, without a lease: one UpdateItem that holds only if nobody
        leased the job or wrote it since `job` was read (same status, task, number of checks and due time). `checks`
        is the new count (default one more: a poller may make several checks before it records them)."""
        values: dict[str, Any] = {
            ":checks": {"N": str(job.checks + 1 if checks is None else checks)},
            ":expected": {"N": str(job.checks)},
            ":status": {"S": status.value},
            ":was": {"S": job.status.value},
            ":task": {"S": job.task_id or ""},
            ":provider_status": {"S": provider_status},
            ":next": {"N": repr(next_check_at)},
            ":now": {"N": repr(now)},
            ":read_next": {"N": repr(job.next_check_at)},
        }
        update = (
            "SET checks = :checks, #status = :status, provider_status = :provider_status, next_check_at = :next, "
            "updated_at = :now"
        )
        if usage is not None:
            update += ", #usage = :usage"
            values[":usage"] = serialize_value(usage)
        return self._update_if(
            Key={"job_id": {"S": job.job_id}},
            UpdateExpression=update + " REMOVE last_error",
            ConditionExpression=(
                # The task too: after an operator retry the job has a new task with the same status and checks.
                # And its due time: a reschedule (a status error recorded under a lease) changes nothing else.
                "attribute_exists(due_shard) AND #status = :was AND checks = :expected AND task_id = :task "
                "AND next_check_at = :read_next AND (attribute_not_exists(lease_until) OR lease_until < :now)"
            ),
            ExpressionAttributeNames={"#status": "status", **({"#usage": "usage"} if usage is not None else {})},
            ExpressionAttributeValues=values,
        )

    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None:
        """Write the whole job while we hold its lease. due_shard None takes it out of the due index."""
        item = self._item(job, due_shard=due_shard, expires_at=expires_at)
        try:
            self._client.put_item(TableName=self._table, Item=serialize(item), **lease_held(owner))
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LeaseLost(f"lost the lease on job {job.job_id}") from exc
            raise

    def put_unconditionally(self, job: Job, *, due_shard: str | None) -> None:
        """Operator actions (retry) that deliberately override the current record."""
        self._client.put_item(TableName=self._table, Item=serialize(self._item(job, due_shard=due_shard)))

    # --- in-flight slots: one small item per slot (slot_items.py) -------------------------------------------------
    def acquire_slot(self, job_id: str, limit: int, *, new_holder: bool = False) -> bool:
        """Take a slot for job_id, or confirm the one it holds; False when no candidate slot is free. `new_holder`:
        job_id cannot hold one yet (claimed moments ago by this invocation), so the holder look-up is skipped."""
        return self._slots.acquire_slot(job_id, limit, new_holder=new_holder)

    def held_slot(self, job_id: str) -> int | None:
        """The slot this store took or confirmed for job_id (None when it did not: ask the job record)."""
        return self._slots.held_slot(job_id)

    def release_slot(self, job_id: str, *, slot: int | None = None) -> None:
        """Give back job_id's slot; `slot` (the job record's) is tried first, and only ever released if job_id
        holds it."""
        self._slots.release_slot(job_id, slot=slot)

    def slot_holders(self) -> set[str]:
        """The jobs holding slots (eventually consistent; see InFlightSlots.slot_holders)."""
        return self._slots.slot_holders()

    # --- daily token budget: one counter item per UTC day (budget_items.py) -----------------------------------
    def commit_tokens(self, day: str, tokens: int, *, budget: int) -> int | None:
        """Add `tokens` to the day's committed total if it stays within `budget`; the new total, else None."""
        return self._budget.commit_tokens(day, tokens, budget=budget)

    def return_tokens(self, day: str, tokens: int) -> None:
        self._budget.return_tokens(day, tokens)

    def committed_tokens(self, day: str) -> int:
        return self._budget.committed_tokens(day)

    # --- newest upload per key: an older event must not overwrite a newer upload's outputs ------------
    def record_latest_upload(self, bucket: str, key: str, *, sequencer: str, job_id: str) -> bool:
        """Remember job_id as the newest upload of the key; False when a newer upload is already known."""
        return self._update_if(
            Key={"job_id": {"S": latest_upload_item_id(bucket, key)}},
            # Kept while a job of this key can be live or its record kept (duplicates are refused by the claim).
            UpdateExpression="SET latest_sequencer = :seq, latest_job_id = :job, expires_at = :expires",
            ConditionExpression="attribute_not_exists(latest_sequencer) OR latest_sequencer <= :seq",
            ExpressionAttributeValues={
                ":seq": {"S": comparable_sequencer(sequencer)},
                ":job": {"S": job_id},
                ":expires": {"N": str(int(self._clock() + self._bookkeeping_lifetime))},
            },
        )

    def latest_job_for(self, bucket: str, key: str) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": latest_upload_item_id(bucket, key)}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        return item.get("latest_job_id", {}).get("S")

    # --- a task adopted after a lost answer: never one another job holds (task_claims.py) ---------------
    def claim_task(self, task_id: str, job_id: str) -> bool:
        return self._task_claims.claim_task(task_id, job_id)

    # --- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _item(job: Job, *, due_shard: str | None, expires_at: float | None = None) -> dict[str, Any]:
        item = job.model_dump(mode="json", exclude_none=True)
        if not item.get("finalize_pending"):
            item.pop("finalize_pending", None)  # only an unfinished terminal job carries the mark
        if due_shard is not None and job.next_check_at is not None:
            item["due_shard"] = due_shard
        else:
            item.pop("next_check_at", None)
        if expires_at is not None:
            item["expires_at"] = int(expires_at)
        return item

    @staticmethod
    def _job_fields(item: dict[str, Any]) -> dict[str, Any]:
        item.pop("due_shard", None)
        item.pop("expires_at", None)
        return item

    def _update_if(self, **request: Any) -> bool:
        return update_if(self._client, self._table, **request)


def _lease_condition(
    job: Job | DueJob, *, owner: str, now: float, lease_seconds: float
) -> tuple[str, dict[str, dict[str, str]]]:
    """A lease is taken on the job as read: same status, no unexpired lease, and its next check not put later since
    (another worker scheduled it meanwhile, e.g. a delivery retry after a failed attempt, which a stale read must
    not bring forward). A job read with no next check (finished) has no such bound."""
    condition = "#status = :status AND (attribute_not_exists(lease_until) OR lease_until < :now)"
    values = {
        ":owner": {"S": owner},
        ":until": {"N": repr(now + lease_seconds)},
        ":now": {"N": repr(now)},
        ":status": {"S": job.status.value},
    }
    if job.next_check_at is not None:
        condition += " AND next_check_at <= :due"
        values[":due"] = {"N": repr(job.next_check_at)}
    return condition, values
