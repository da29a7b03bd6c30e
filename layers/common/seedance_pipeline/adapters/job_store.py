"""DynamoDB adapter for the jobs table: claims, leases, the sparse due-jobs index and in-flight slots."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from seedance_pipeline.errors import AlreadyClaimed, LeaseLost
from seedance_pipeline.models import Job, JobStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DUE_INDEX = "due-jobs"
TASK_INDEX = "by-task-id"
IN_FLIGHT_ITEM_ID = "#in-flight"
# Job ids are hex; the table's other items (the in-flight slots, the newest upload per key) start with this.
BOOKKEEPING_ID_PREFIX = "#"
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


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED


class JobStore:
    def __init__(self, table_name: str, client: DynamoDBClient, *, due_shards: int) -> None:
        self._table = table_name
        self._client = client
        self.due_shards = due_shards

    # --- reads -------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Job.model_validate(self._job_fields(deserialize(item))) if item else None

    def due_jobs(self, shard: str, now: float, *, page_size: int = 100) -> Iterator[Job]:
        """Live jobs whose next check is due, oldest first, from the sparse index (never a Scan)."""
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
                yield Job.model_validate(self._job_fields(deserialize(item)))
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

    def acquire_lease(self, job: Job, *, owner: str, now: float, lease_seconds: float) -> Job:
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

    # --- in-flight slots: a set of job ids, so taking or giving back a slot twice is harmless ---------
    def acquire_slot(self, job_id: str, limit: int) -> bool:
        return self._update_if(
            Key={"job_id": {"S": IN_FLIGHT_ITEM_ID}},
            UpdateExpression="ADD holders :me",
            ConditionExpression="attribute_not_exists(holders) OR size(holders) < :limit OR contains(holders, :id)",
            ExpressionAttributeValues={":me": {"SS": [job_id]}, ":limit": {"N": str(limit)}, ":id": {"S": job_id}},
        )

    def release_slot(self, job_id: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"job_id": {"S": IN_FLIGHT_ITEM_ID}},
            UpdateExpression="DELETE holders :me",
            ExpressionAttributeValues={":me": {"SS": [job_id]}},
        )

    # --- newest upload per key: an older event must not overwrite a newer upload's outputs ------------
    def record_latest_upload(self, bucket: str, key: str, *, sequencer: str, job_id: str) -> bool:
        """Remember job_id as the newest upload of the key; False when a newer upload is already known."""
        return self._update_if(
            Key={"job_id": {"S": latest_upload_item_id(bucket, key)}},
            UpdateExpression="SET latest_sequencer = :seq, latest_job_id = :job",
            ConditionExpression="attribute_not_exists(latest_sequencer) OR latest_sequencer <= :seq",
            ExpressionAttributeValues={":seq": {"S": comparable_sequencer(sequencer)}, ":job": {"S": job_id}},
        )

    def latest_job_for(self, bucket: str, key: str) -> str | None:
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": latest_upload_item_id(bucket, key)}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        return item.get("latest_job_id", {}).get("S")

    def slot_holders(self) -> set[str]:
        response = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": IN_FLIGHT_ITEM_ID}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        return set(item.get("holders", {}).get("SS", []))

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
