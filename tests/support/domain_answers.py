"""For generated tests whose property is "a domain value or a domain error, never anything else"."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from seedance_pipeline.errors import InvalidInput

T = TypeVar("T")


def answer_or_refusal(call: Callable[[], T]) -> T | InvalidInput:
    """The call's value, or the InvalidInput it raised; any other exception propagates and fails the property."""
    try:
        return call()
    except InvalidInput as refusal:
        return refusal
