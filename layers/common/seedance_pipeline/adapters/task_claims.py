"""Tasks adopted after a lost answer: a task id is claimed by one job only, and never one a live job's record holds
(docs/provider-api.md, "Lost answer"). Only the rare lost-answer path writes here."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from seedance_pipeline.adapters.dynamo_codec import update_if
from seedance_pipeline.models import DUE_INDEX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def task_claim_item_id(task_id: str) -> str:
    """A provider's task id is its own text: hashed, so the key stays short and of one shape."""
    return "#task#" + hashlib.sha256(task_id.encode()).hexdigest()[:40]


class TaskClaims:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        due_shards: int,
        lifetime_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._table = table_name
        self._client = client
        self.due_shards = due_shards
        self._lifetime = lifetime_seconds
        self._clock = clock

    def claim_task(self, task_id: str, job_id: str) -> bool:
        """Claim task_id for job_id (see the port). First the live jobs in the due index (which projects task_id;
        read by shard, a Query each, no write) for another holder; then one conditional write of a `#task#` item,
        so of two adopters only one wins. A job that got its task id from its own POST writes no claim: this stays
        off the common path, and the due index is what shows its task. The index is eventually consistent: a job
        whose POST was answered in the last moment may not show yet (its task's seed is another's anyway)."""
        for shard in range(self.due_shards):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard",
                "FilterExpression": "task_id = :task AND job_id <> :job",
                "ExpressionAttributeValues": {
                    ":shard": {"S": str(shard)},
                    ":task": {"S": task_id},
                    ":job": {"S": job_id},
                },
                "Select": "COUNT",
            }
            while True:
                response = self._client.query(**kwargs)
                if response.get("Count", 0):
                    return False
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return self._update_if(
            Key={"job_id": {"S": task_claim_item_id(task_id)}},
            UpdateExpression="SET task_holder = :job, expires_at = :expires",
            ConditionExpression="attribute_not_exists(task_holder) OR task_holder = :job",
            ExpressionAttributeValues={
                ":job": {"S": job_id},
                ":expires": {"N": str(int(self._clock() + self._lifetime))},
            },
        )

    def _update_if(self, **request: Any) -> bool:
        return update_if(self._client, self._table, **request)
