"""The jobs table's batch items: a batch's record (`#batch#<id>`), its row jobs written in bulk, and the count of its
live jobs, decremented in one transaction with each job's own end so every job counts exactly once.

Cost. A write of rows uses BatchWriteItem (25 items a request, one WCU per KB each, no conditions) wherever no row
job can exist yet: the first write (the batch record's claim guarantees it), and in a resumed write every chunk
after the first. Only the first chunk after the recorded progress may hold rows (the writer that died was writing
it), so a resumed write puts that chunk one conditional PutItem at a time: a row a poller already moved on is never
written back to WAITING. The count's transaction bills both items twice (4 WCU per job end, on top of nothing: it
replaces the job's terminal save).

Stalled writes. Until its rows are all written, the batch record sits in the sparse due index under its own shard
(rules/keys.BATCH_WRITES_SHARD), due when its writer's lease has run out and WRITER_GRACE_SECONDS more have passed
(models.py): a writer whose request hangs past its lease may be alive until then, and its BatchWriteItem has no
condition, so a write taken over earlier could see a row a poller already sent put back to WAITING. The writer
sends no request past its lease (put_new_jobs), and one that stops of its own accord records a lease that ended a
grace ago, so it is taken over at once. Each progress record renews the lease and moves the due time; the record of
the last rows takes it out. The poller finds a stalled write with one Query, empty and cheap when none is
(logic/batch_resume.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from seedance_pipeline.adapters.dynamo_codec import (
    deserialize,
    is_condition_failure,
    lease_held,
    serialize,
    update_if,
    update_returning_if,
)
from seedance_pipeline.errors import LeaseLost
from seedance_pipeline.models import DUE_INDEX, WRITER_GRACE_SECONDS, Batch, Job
from seedance_pipeline.rules.keys import BATCH_WRITES_SHARD

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_ITEM_PREFIX = "#batch#"
WRITE_BATCH_SIZE = 25  # BatchWriteItem's most
GET_BATCH_SIZE = 100  # BatchGetItem's most
UNPROCESSED_RETRIES = 8
STALLED_PAGE = 25  # stalled writes taken up a poll: each is a whole resumed write
WRITE_CONCURRENCY = 8

JobItem = Callable[[Job, str | None, float | None], dict[str, Any]]


def batch_item_id(batch_id: str) -> str:
    return f"{BATCH_ITEM_PREFIX}{batch_id}"


class BatchItems:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        job_item: JobItem,
        lifetime_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table_name
        self._client = client
        self._job_item = job_item
        self._lifetime = lifetime_seconds
        self._sleep = sleep

    def create_batch(self, batch: Batch) -> bool:
        item = batch.model_dump(mode="json", exclude_none=True)
        item["job_id"] = batch_item_id(batch.batch_id)
        # No expiry while the batch is open: a batch the DailyTokenBudget spreads over more days than its lifetime
        # would otherwise lose its record (its count, its report, its event). complete_batch sets it.
        if not batch.all_written and batch.writer_until is not None:
            item.update(due_shard=BATCH_WRITES_SHARD, next_check_at=batch.writer_until + WRITER_GRACE_SECONDS)
        try:
            self._client.put_item(
                TableName=self._table, Item=serialize(item), ConditionExpression="attribute_not_exists(job_id)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get_batch(self, batch_id: str) -> Batch | None:
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": batch_item_id(batch_id)}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _batch(deserialize(item)) if item else None

    def take_batch_writer(self, batch_id: str, *, owner: str, now: float, lease_seconds: float) -> Batch | None:
        item = update_returning_if(
            self._client,
            self._table,
            Key=self._key(batch_id),
            UpdateExpression=(
                "SET writer_owner = :owner, writer_until = :until, due_shard = :shard, next_check_at = :due"
            ),
            # writer_until + grace < now: the last writer is surely dead (see the module's docstring).
            ConditionExpression="all_written = :no AND (attribute_not_exists(writer_until) OR writer_until < :dead)",
            ExpressionAttributeValues={
                ":owner": {"S": owner},
                ":until": {"N": repr(now + lease_seconds)},
                ":due": {"N": repr(now + lease_seconds + WRITER_GRACE_SECONDS)},
                ":dead": {"N": repr(now - WRITER_GRACE_SECONDS)},
                ":no": {"BOOL": False},
                ":shard": {"S": BATCH_WRITES_SHARD},
            },
        )
        return _batch(item) if item is not None else None

    def record_batch_progress(
        self, batch_id: str, *, owner: str, written: int, all_written: bool, writer_until: float
    ) -> bool:
        values: dict[str, Any] = {
            ":owner": {"S": owner},
            ":written": {"N": str(written)},
            ":all": {"BOOL": all_written},
        }
        if all_written:
            update = "SET written = :written, all_written = :all REMOVE due_shard, next_check_at"
        else:
            # The lease renewed, and the record due in the index once it and the grace have run out.
            update = "SET written = :written, all_written = :all, writer_until = :until, next_check_at = :due"
            values[":until"] = {"N": repr(writer_until)}
            values[":due"] = {"N": repr(writer_until + WRITER_GRACE_SECONDS)}
        return update_if(
            self._client,
            self._table,
            Key=self._key(batch_id),
            UpdateExpression=update,
            ConditionExpression="writer_owner = :owner",
            ExpressionAttributeValues=values,
        )

    def stalled_batch_writes(self, now: float) -> list[str]:
        response = self._client.query(
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :shard AND next_check_at <= :now",
            ExpressionAttributeValues={":shard": {"S": BATCH_WRITES_SHARD}, ":now": {"N": repr(now)}},
            Limit=STALLED_PAGE,
        )
        return [item["job_id"]["S"].removeprefix(BATCH_ITEM_PREFIX) for item in response.get("Items", [])]

    def put_new_jobs(
        self, jobs: list[tuple[Job, str | None, float | None]], *, first_write: bool, lease_left: Callable[[], float]
    ) -> None:
        """Put the jobs; no request (nor retry of unprocessed items) is sent once `lease_left()` is not positive:
        LeaseLost then, with some of them perhaps unwritten (a later writer resumes them)."""
        items = [self._job_item(job, shard, expires_at) for job, shard, expires_at in jobs]
        if not first_write:
            for item in items:
                _check_lease(lease_left)
                try:
                    self._client.put_item(
                        TableName=self._table,
                        Item=serialize(item),
                        ConditionExpression="attribute_not_exists(job_id)",
                    )
                except ClientError as exc:
                    if not is_condition_failure(exc):
                        raise
            return
        chunks = [items[start : start + WRITE_BATCH_SIZE] for start in range(0, len(items), WRITE_BATCH_SIZE)]
        # Several requests at once: each is a round trip of its own, and boto3 clients are thread-safe.
        with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY, thread_name_prefix="batch-write") as pool:
            list(pool.map(lambda chunk: self._write_chunk(chunk, lease_left), chunks))

    def _write_chunk(self, chunk: list[dict[str, Any]], lease_left: Callable[[], float]) -> None:
        requests: Any = {self._table: [{"PutRequest": {"Item": serialize(item)}} for item in chunk]}
        for attempt in range(UNPROCESSED_RETRIES + 1):
            _check_lease(lease_left)
            requests = self._client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not requests:
                return
            if attempt == UNPROCESSED_RETRIES:
                raise RuntimeError("DynamoDB left batch rows unwritten after retries (throttled)")
            self._sleep(min(0.05 * 2**attempt, 2.0))

    def save_counting_batch(
        self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None
    ) -> int | None:
        """Save the leased job marked as counted and take one from its batch's live count, in one transaction.
        Returns the batch's count after it (None when the batch record is gone)."""
        assert job.batch is not None
        item = self._job_item(job.model_copy(update={"batch_counted": True}), due_shard, expires_at)
        # The job's own save, under the same condition as JobStore.save.
        put: Any = {"TableName": self._table, "Item": serialize(item), **lease_held(owner)}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": put},
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"job_id": {"S": batch_item_id(job.batch.batch_id)}},
                            "UpdateExpression": "ADD remaining :minus",
                            "ConditionExpression": "attribute_exists(job_id)",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise LeaseLost(f"lost the lease on job {job.job_id}") from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return None
            raise
        batch = self.get_batch(job.batch.batch_id)
        return batch.remaining if batch else None

    def complete_batch(
        self, batch_id: str, *, now: float, counts: dict[str, int], billed_tokens: int, publish_until: float
    ) -> bool:
        return update_if(
            self._client,
            self._table,
            Key=self._key(batch_id),
            UpdateExpression=(
                "SET completed_at = :now, #counts = :counts, billed_tokens = :billed, publish_until = :until, "
                "expires_at = :expires"
            ),
            ConditionExpression="attribute_exists(job_id) AND attribute_not_exists(completed_at)",
            ExpressionAttributeNames={"#counts": "counts"},
            ExpressionAttributeValues={
                ":now": {"N": repr(now)},
                ":counts": {"M": {status: {"N": str(n)} for status, n in counts.items()}},
                ":billed": {"N": str(billed_tokens)},
                ":until": {"N": repr(publish_until)},
                ":expires": {"N": str(int(now + self._lifetime))},
            },
        )

    def take_batch_publisher(self, batch_id: str, *, now: float, lease_seconds: float) -> Batch | None:
        item = update_returning_if(
            self._client,
            self._table,
            Key=self._key(batch_id),
            UpdateExpression="SET publish_until = :until",
            ConditionExpression="publish_until < :now",
            ExpressionAttributeValues={":until": {"N": repr(now + lease_seconds)}, ":now": {"N": repr(now)}},
        )
        return _batch(item) if item is not None else None

    def clear_batch_publish(self, batch_id: str, *, publish_until: float) -> bool:
        return update_if(
            self._client,
            self._table,
            Key=self._key(batch_id),
            UpdateExpression="REMOVE publish_until",
            ConditionExpression="publish_until = :mine",
            ExpressionAttributeValues={":mine": {"N": repr(publish_until)}},
        )

    @staticmethod
    def _key(batch_id: str) -> dict[str, Any]:
        return {"job_id": {"S": batch_item_id(batch_id)}}

    def get_jobs(self, job_ids: list[str]) -> dict[str, Job]:
        found: dict[str, Job] = {}
        for start in range(0, len(job_ids), GET_BATCH_SIZE):
            keys: Any = {
                self._table: {
                    "Keys": [{"job_id": {"S": job_id}} for job_id in job_ids[start : start + GET_BATCH_SIZE]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(UNPROCESSED_RETRIES + 1):
                response = self._client.batch_get_item(RequestItems=keys)
                for raw in response.get("Responses", {}).get(self._table, []):
                    item = deserialize(raw)
                    item.pop("due_shard", None)
                    item.pop("expires_at", None)
                    job = Job.model_validate(item)
                    found[job.job_id] = job
                keys = response.get("UnprocessedKeys") or {}
                if not keys:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    raise RuntimeError("DynamoDB left batch rows unread after retries (throttled)")
                self._sleep(min(0.05 * 2**attempt, 2.0))
        return found

    def iter_batches(self) -> Iterator[Batch]:
        """Every batch record (a Scan: for operator tools only, never a hot path)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(job_id, :batch)",
            "ExpressionAttributeValues": {":batch": {"S": BATCH_ITEM_PREFIX}},
        }
        while True:
            page = self._client.scan(**kwargs)
            for item in page.get("Items", []):
                yield _batch(deserialize(item))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _check_lease(lease_left: Callable[[], float]) -> None:
    if lease_left() <= 0:
        raise LeaseLost("the batch writer's lease ran out before all its rows were sent")


def _batch(item: dict[str, Any]) -> Batch:
    for stored_only in ("job_id", "expires_at", "due_shard", "next_check_at"):
        item.pop(stored_only, None)
    return Batch.model_validate(item)
