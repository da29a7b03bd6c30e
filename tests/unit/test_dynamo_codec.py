"""The jobs-table codec serialises the JSON types itself (for the batch write's speed): it must give exactly what
boto3's TypeSerializer gave, for every value, including the numbers and the values it refuses."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from seedance_pipeline.adapters.dynamo_codec import deserialize, serialize, serialize_value


def _boto3_way(value: Any) -> Any:
    """The codec's former serialisation: floats to Decimal(repr), None dropped from maps, then TypeSerializer."""

    def to_dynamo(v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(repr(v))
        if isinstance(v, dict):
            return {k: to_dynamo(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [to_dynamo(x) for x in v]
        return v

    return dict(TypeSerializer().serialize(to_dynamo(value)))


def _outcome(serialise: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", serialise(value)
    except Exception as exc:  # the refusal must be the same kind as boto3's
        return "error", type(exc)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.binary(max_size=4).map(Binary)
    | st.frozensets(st.text(min_size=1, max_size=3), min_size=1, max_size=3).map(set)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_the_codec_serialises_every_value_as_boto3s_serializer_did(value: Any) -> None:
    assert _outcome(serialize_value, value) == _outcome(_boto3_way, value)


@pytest.mark.parametrize("number", [math.nan, math.inf, 10**38])
def test_numbers_dynamodb_cannot_hold_are_refused_as_before(number: float | int) -> None:
    assert _outcome(serialize_value, number)[0] == "error"
    assert _outcome(serialize_value, number) == _outcome(_boto3_way, number)


def test_a_job_like_item_round_trips_without_its_empty_fields() -> None:
    item = {"job_id": "j", "created_at": 1700000000.25, "n": 3, "ok": True, "batch": {"row": 2, "x": None}, "no": None}
    assert serialize(item)["created_at"] == {"N": "1700000000.25"}
    assert deserialize(serialize(item)) == {
        "job_id": "j",
        "created_at": 1700000000.25,
        "n": 3,
        "ok": True,
        "batch": {"row": 2},
    }
