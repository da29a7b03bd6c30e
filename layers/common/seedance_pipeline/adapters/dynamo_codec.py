"""The DynamoDB value codec shared by the jobs-table adapters: plain Python values to attribute values and back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

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


def serialize_value(value: Any) -> dict[str, Any]:
    serialized: dict[str, Any] = dict(_serializer.serialize(_to_dynamo(value)))
    return serialized


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize_value(v) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED


def update_if(client: Any, table: str, **request: Any) -> bool:
    """An UpdateItem whose condition may fail: False when it did, so callers branch instead of catching."""
    try:
        client.update_item(TableName=table, **request)
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def update_returning_if(client: Any, table: str, **request: Any) -> dict[str, Any] | None:
    """update_if that answers the item as written (deserialized), or None when the condition failed."""
    try:
        response = client.update_item(TableName=table, ReturnValues="ALL_NEW", **request)
    except ClientError as exc:
        if is_condition_failure(exc):
            return None
        raise
    return deserialize(response["Attributes"])


def lease_held(owner: str) -> dict[str, Any]:
    """The condition of every write made under a job's lease (a Put, or a Put inside a transaction)."""
    return {"ConditionExpression": "lease_owner = :owner", "ExpressionAttributeValues": {":owner": {"S": owner}}}
