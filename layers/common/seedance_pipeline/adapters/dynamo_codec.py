"""The DynamoDB value codec shared by the jobs-table adapters: plain Python values to attribute values and back.

Serialising is on the batch write's path (10,000 job items of ~20 attributes in one submit invocation), where boto3's
TypeSerializer, with its chain of isinstance checks per value, cost more than the rest of the write's CPU. The
JSON types (str, bool, int, float, dict, list, None) are therefore serialised here directly, with boto3's own rules
(numbers through its DYNAMODB_CONTEXT, so the text, the 38-digit limit and the NaN/Infinity refusal are the same);
any other type still goes through TypeSerializer. tests/unit/test_dynamo_codec.py checks both give the same result.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
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


def _number(value: int | float) -> str:
    # TypeSerializer._serialize_n's rule, on the Decimal _to_dynamo makes of a float.
    text = str(DYNAMODB_CONTEXT.create_decimal(Decimal(repr(value)) if type(value) is float else value))
    if text in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return text


def serialize_value(value: Any) -> dict[str, Any]:
    # Exact types: a subclass (an enum member, a Mapping) takes boto3's path below, which decides as before.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int or kind is float:
        return {"N": _number(value)}
    if kind is dict:
        return {"M": {k: serialize_value(v) for k, v in value.items() if v is not None}}
    if kind is list:
        return {"L": [serialize_value(v) for v in value]}
    if value is None:
        return {"NULL": True}
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
