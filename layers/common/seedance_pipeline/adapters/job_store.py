"""DynamoDB adapter for the jobs table: claims, leases, the sparse due-jobs index and in-flight slots.

In-flight slots. Admission must cost the same at MaxInFlight 10 and 5,000, so no item may grow with the jobs in
flight (one string set of holders, rewritten by every take and release, cost ~32 WCU a take at 1,000 in flight).
Each slot is its own small item `#slot#<n>` (n < limit, ~80 bytes) naming its holder:

- taking one is a conditional PutItem ("free, mine already, or its holder outlived any job"): 1 WCU, plus 1 WCU
  for each busy slot tried. Candidates in order: the slot the job already holds (this process's memory, else the
  slot-holders index: taking twice, or again after a crash, never takes a second one), slots this process saw
  free (given back, or listed: at saturation a finishing job's slot goes straight to the next waiting job), then
  SLOT_PROBES slots from a hash of the job id (every slot when the limit is no larger). Only when all of these are
  busy does a take list the holders (~70 bytes each: this read, on this path only, grows with the jobs in flight)
  and try free ones, so admission still reaches the limit exactly;
- giving one back is a conditional update `holder = :job` that removes the holder: 1 WCU, harmless repeated;
- the sparse index slot-holders (slot_pool, holder; KEYS_ONLY) lists the holders for the JobsInFlight metric and
  the reconciliation of holders with live jobs, and finds the slot of a job another process took: 1 index write
  when a slot is taken, 1 when it is given back (its partition takes ~500 jobs a second);
- a crash cannot hold a slot for ever: a slot carries expires_at (twice MaxJobAgeMinutes, as long as a paid job
  never answered lives, plus a margin after it was taken; no job lives longer) and an expired holder counts as
  free; the table's TTL then deletes idle slots.

The alternative, a counter item moved in one TransactWriteItems with the job's own record, counts exactly too, but
a transaction bills each item twice (~4 WCU to take and ~5 to give back, folded into the job's own writes, against
~2 and ~2 here, with the index) and the counter is one hot key taking every admission. What slots give up: the
index is eventually consistent, so a holder listing can lag a take by a moment (admission itself rests on the
conditional writes), and a limit lowered below the number in flight drains rather than applying at once.

Due index. It projects only DueJob's fields, so a lease, the pre-submission mark or a delivery note costs no index
write; `record_check` records a status check that delivers nothing without a lease (1 WCU + 2 index writes, where
lease + save cost 5). Bookkeeping items (`#latest#...`, `#slot#...`) carry the table's TTL attribute.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from seedance_pipeline.errors import AlreadyClaimed, LeaseLost
from seedance_pipeline.models import DueJob, Job, JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DUE_INDEX = "due-jobs"
TASK_INDEX = "by-task-id"
# Job ids are hex; the table's other items (the in-flight slots, the newest upload per key) start with this.
BOOKKEEPING_ID_PREFIX = "#"
SLOT_INDEX = "slot-holders"
SLOT_ITEM_PREFIX = "#slot#"
SLOT_POOL = "slots"  # the slot-holders index's partition key: held slots carry it, free ones do not
SLOT_PROBES = 4
BUDGET_ITEM_PREFIX = "#budget#"
# A day's token counter is read for that day only; kept a few days for the spend command, then TTL deletes it.
BUDGET_ITEM_DAYS_KEPT = 3
# Defaults for a store built without settings (operator tools): MaxJobAgeMinutes' default plus margins.
DEFAULT_SLOT_LIFETIME_SECONDS = 2 * 120 * 60 + 3600
DEFAULT_BOOKKEEPING_LIFETIME_SECONDS = 120 * 60 + 30 * 86400
_SLOT_CACHE_SIZE = 4096
_SLOT_HINTS_PER_TAKE = 4
_SLOT_HINTS_KEPT = 512
_SLOT_HINT_SECONDS = 30.0  # a slot seen free longer ago than this has probably been taken by another process
_CONDITION_FAILED = "ConditionalCheckFailedException"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def comparable_sequencer(sequencer: str) -> str:
    """S3 sequencers of one key order by hex value once left-padded to equal length (S3 docs)."""
    return sequencer.upper().rjust(64, "0")


def latest_upload_item_id(bucket: str, key: str) -> str:
    return "#latest#" + hashlib.sha256(f"{bucket}\n{key}".encode()).hexdigest()[:40]


def slot_item_id(slot: int) -> str:
    return f"{SLOT_ITEM_PREFIX}{slot}"


def budget_item_id(day: str) -> str:
    return f"{BUDGET_ITEM_PREFIX}{day}"


def budget_item_expires_at(day: str) -> int:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int((start + timedelta(days=1 + BUDGET_ITEM_DAYS_KEPT)).timestamp())


def slot_probe_order(job_id: str, limit: int, probes: int = SLOT_PROBES) -> list[int]:
    """The slots a job tries, spread by its id so concurrent takes rarely collide: all of them for a small limit,
    else `probes` slots stepping through the range by a stride coprime with it (no slot repeats)."""
    digest = int(hashlib.sha256(job_id.encode()).hexdigest()[:16], 16)
    start = digest % limit
    if limit <= probes:
        return [(start + i) % limit for i in range(limit)]
    step = 1 + (digest >> 32) % (limit - 1)
    while math.gcd(step, limit) != 1:
        step = step % (limit - 1) + 1
    return [(start + i * step) % limit for i in range(probes)]


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED


class JobStore:
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
        self._slot_lifetime = slot_lifetime_seconds
        self._bookkeeping_lifetime = bookkeeping_lifetime_seconds
        self._clock = clock
        # Which slot each job took through this store, and slots it gave back (free for the next take).
        self._slot_of: OrderedDict[str, int] = OrderedDict()
        self._free_slots: deque[tuple[int, float]] = deque(maxlen=_SLOT_HINTS_KEPT)
        self._slot_lock = threading.Lock()

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

    def earliest_due(self, shard: str) -> float | None:
        response = self._client.query(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :shard",
            ExpressionAttributeValues={":shard": {"S": shard}},
            ProjectionExpression="next_check_at",
            Limit=1,
        )
        items = response.get("Items", [])
        return float(items[0]["next_check_at"]["N"]) if items else None

    def find_by_task_id(self, task_id: str) -> str | None:
        response = self._client.query(
            TableName=self._table,
            IndexName=TASK_INDEX,
            KeyConditionExpression="task_id = :t",
            ExpressionAttributeValues={":t": {"S": task_id}},
        )
        items = response.get("Items", [])
        return items[0]["job_id"]["S"] if items else None

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
            if _is_condition_failure(exc):
                raise AlreadyClaimed(f"job {job.job_id} exists already") from exc
            raise

    def acquire_lease(self, job: Job | DueJob, *, owner: str, now: float, lease_seconds: float) -> Job:
        """Take the job for this worker unless another holds an unexpired lease or has moved it on."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job.job_id}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression=("#status = :status AND (attribute_not_exists(lease_until) OR lease_until < :now)"),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": repr(now + lease_seconds)},
                    ":now": {"N": repr(now)},
                    ":status": {"S": job.status.value},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise LeaseLost(f"job {job.job_id} is leased or has moved on") from exc
            raise
        return Job.model_validate(self._job_fields(deserialize(response["Attributes"])))

    def record_check(
        self,
        job: DueJob,
        *,
        status: JobStatus,
        provider_status: str,
        next_check_at: float,
        now: float,
        usage: dict[str, Any] | None = None,
    ) -> bool:
        """Record a status check that delivered nothing, without a lease: one UpdateItem that holds only if nobody
        leased the job or recorded a check since it was read (same status, task and number of checks)."""
        values: dict[str, Any] = {
            ":checks": {"N": str(job.checks + 1)},
            ":expected": {"N": str(job.checks)},
            ":status": {"S": status.value},
            ":was": {"S": job.status.value},
            ":task": {"S": job.task_id or ""},
            ":provider_status": {"S": provider_status},
            ":next": {"N": repr(next_check_at)},
            ":now": {"N": repr(now)},
        }
        update = (
            "SET checks = :checks, #status = :status, provider_status = :provider_status, next_check_at = :next, "
            "updated_at = :now"
        )
        if usage is not None:
            update += ", #usage = :usage"
            values[":usage"] = _serializer.serialize(_to_dynamo(usage))
        return self._update_if(
            Key={"job_id": {"S": job.job_id}},
            UpdateExpression=update + " REMOVE last_error",
            ConditionExpression=(
                # The task too: after an operator retry the job has a new task with the same status and checks.
                "attribute_exists(due_shard) AND #status = :was AND checks = :expected AND task_id = :task "
                "AND (attribute_not_exists(lease_until) OR lease_until < :now)"
            ),
            ExpressionAttributeNames={"#status": "status", **({"#usage": "usage"} if usage is not None else {})},
            ExpressionAttributeValues=values,
        )

    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None:
        """Write the whole job while we hold its lease. due_shard None takes it out of the due index."""
        item = self._item(job, due_shard=due_shard, expires_at=expires_at)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(item),
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise LeaseLost(f"lost the lease on job {job.job_id}") from exc
            raise

    def put_unconditionally(self, job: Job, *, due_shard: str | None) -> None:
        """Operator actions (retry) that deliberately override the current record."""
        self._client.put_item(TableName=self._table, Item=serialize(self._item(job, due_shard=due_shard)))

    # --- in-flight slots: one small item per slot, so taking or returning one costs the same at any limit ---------
    def acquire_slot(self, job_id: str, limit: int) -> bool:
        """Take a slot for job_id, or confirm the one it holds; False when no candidate slot is free."""
        now = self._clock()
        tried: set[int] = set()
        for slot in self._slot_candidates(job_id, limit):
            if slot in tried:
                continue
            tried.add(slot)
            if self._take_slot(slot, job_id, now):
                with self._slot_lock:
                    self._slot_of[job_id] = slot
                    self._slot_of.move_to_end(job_id)
                    while len(self._slot_of) > _SLOT_CACHE_SIZE:
                        self._slot_of.popitem(last=False)
                return True
        return False

    def release_slot(self, job_id: str) -> None:
        with self._slot_lock:
            cached = self._slot_of.pop(job_id, None)
        if cached is not None and self._give_back(cached, job_id):
            return
        for slot in self._slots_held_by(job_id):
            self._give_back(slot, job_id)

    def slot_holders(self) -> set[str]:
        """The jobs holding slots, from the sparse slot-holders index (eventually consistent: good for a metric and
        for reconciling holders with live jobs; admission itself relies on the conditional writes)."""
        return set(self._held_slots().values())

    def _held_slots(self) -> dict[int, str]:
        held: dict[int, str] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": SLOT_INDEX,
            "KeyConditionExpression": "slot_pool = :pool",
            "ExpressionAttributeValues": {":pool": {"S": SLOT_POOL}},
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                held[int(item["job_id"]["S"].removeprefix(SLOT_ITEM_PREFIX))] = item["holder"]["S"]
            if "LastEvaluatedKey" not in response:
                return held
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _slot_candidates(self, job_id: str, limit: int) -> Iterator[int]:
        # The slot this job already holds first, so taking twice (or again after a crash) never takes a second one.
        with self._slot_lock:
            cached = self._slot_of.get(job_id)
        if cached is not None:
            yield cached
        else:
            yield from self._slots_held_by(job_id)
        # Slots this process recently gave back or saw free are tried next: at saturation a finishing job's slot
        # goes straight to the next waiting one instead of being searched for.
        yield from self._free_hints(limit)
        probes = slot_probe_order(job_id, limit)
        yield from probes
        if len(probes) == limit:
            return  # every slot was tried
        # Most slots are busy: list the held ones (~70 bytes each, so this read grows with the jobs in flight, on
        # this path only) and try free ones, so admission still reaches the limit; the rest become hints.
        held = self._held_slots()
        if len(held) >= limit:
            return
        start = probes[0]
        free = [slot for offset in range(limit) if (slot := (start + offset) % limit) not in held]
        now = self._clock()
        with self._slot_lock:
            self._free_slots.extend((slot, now) for slot in free[SLOT_PROBES:])
        yield from free[:SLOT_PROBES]

    def _free_hints(self, limit: int) -> Iterator[int]:
        tried = 0
        while tried < _SLOT_HINTS_PER_TAKE:
            with self._slot_lock:
                if not self._free_slots:
                    return
                slot, noted_at = self._free_slots.popleft()
            if slot < limit and self._clock() - noted_at < _SLOT_HINT_SECONDS:
                tried += 1
                yield slot

    def _take_slot(self, slot: int, job_id: str, now: float) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "job_id": {"S": slot_item_id(slot)},
                    "holder": {"S": job_id},
                    "slot_pool": {"S": SLOT_POOL},
                    "expires_at": {"N": str(int(now + self._slot_lifetime))},
                },
                # An expired holder outlived any job (twice MaxJobAgeMinutes plus a margin): its slot leaked in a crash.
                ConditionExpression="attribute_not_exists(holder) OR holder = :job OR expires_at < :now",
                ExpressionAttributeValues={":job": {"S": job_id}, ":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def _give_back(self, slot: int, job_id: str) -> bool:
        released = self._update_if(
            Key={"job_id": {"S": slot_item_id(slot)}},
            UpdateExpression="REMOVE holder, slot_pool",
            ConditionExpression="holder = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
            ReturnValues="ALL_NEW",
        )
        if released:
            with self._slot_lock:
                self._free_slots.appendleft((slot, self._clock()))
        return released

    def _slots_held_by(self, job_id: str) -> list[int]:
        response = self._client.query(
            TableName=self._table,
            IndexName=SLOT_INDEX,
            KeyConditionExpression="slot_pool = :pool AND holder = :job",
            ExpressionAttributeValues={":pool": {"S": SLOT_POOL}, ":job": {"S": job_id}},
        )
        return [int(item["job_id"]["S"].removeprefix(SLOT_ITEM_PREFIX)) for item in response.get("Items", [])]

    # --- daily token budget: one counter item per UTC day, moved by single conditional ADDs -----------------------
    def commit_tokens(self, day: str, tokens: int, *, budget: int) -> int | None:
        """Add `tokens` to the day's committed total if it stays within `budget`; the new total, else None.
        DynamoDB conditions cannot add, so the condition compares the total before the ADD with budget - tokens."""
        room = budget - tokens
        if room < 0:
            return None
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": budget_item_id(day)}},
                UpdateExpression="ADD committed :tokens SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(committed) OR committed <= :room",
                ExpressionAttributeValues={
                    ":tokens": {"N": str(tokens)},
                    ":room": {"N": str(room)},
                    ":expires": {"N": str(budget_item_expires_at(day))},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return int(response["Attributes"]["committed"]["N"])

    def return_tokens(self, day: str, tokens: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"job_id": {"S": budget_item_id(day)}},
            UpdateExpression="ADD committed :tokens SET expires_at = :expires",
            ExpressionAttributeValues={
                ":tokens": {"N": str(-tokens)},
                ":expires": {"N": str(budget_item_expires_at(day))},
            },
        )

    def committed_tokens(self, day: str) -> int:
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": budget_item_id(day)}}, ConsistentRead=True
        )
        return int((response.get("Item") or {}).get("committed", {}).get("N", "0"))

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
        """An UpdateItem whose condition may fail: False when it did, so callers branch instead of catching."""
        try:
            self._client.update_item(TableName=self._table, **request)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True
