"""Assertions that also narrow types, so tests read Optional fields without mypy ignores."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """The value of an Optional field the test expects to be set; fails the test if it is None."""
    assert value is not None, "expected a value, got None"
    return value
