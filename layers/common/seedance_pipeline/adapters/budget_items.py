"""The daily token budget's counters: one item per UTC day in the jobs table, moved by single conditional ADDs, so
two submitters can never commit past the budget between them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from seedance_pipeline.adapters.dynamo_codec import is_condition_failure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BUDGET_ITEM_PREFIX = "#budget#"
# A day's token counter is read for that day only; kept a few days for the spend command, then TTL deletes it.
BUDGET_ITEM_DAYS_KEPT = 3


def budget_item_id(day: str) -> str:
    return f"{BUDGET_ITEM_PREFIX}{day}"


def budget_item_expires_at(day: str) -> int:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return int((start + timedelta(days=1 + BUDGET_ITEM_DAYS_KEPT)).timestamp())


class DailyBudgetCounters:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

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
            if is_condition_failure(exc):
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
