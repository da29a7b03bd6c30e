"""Make the in-process moto server apply each DynamoDB write atomically, as DynamoDB does.

DynamoDB evaluates a write's condition and applies the write as one step per item: two conditional updates of
one counter can never both pass a check that only one of them should (the daily token budget relies on it).
moto checks and applies in separate steps without a lock, so under concurrent requests both can pass and the
counter overshoots (seen as a rare failure of the budget contract test under load). One lock around moto's write
operations restores the guarantee for the local stack; moto's writes take about a millisecond, so serialising
them costs the tests nothing measurable. Dev tooling only: nothing here is shipped to Lambda.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
_lock = threading.RLock()
_applied = False


def apply_atomic_writes() -> None:
    """Wrap moto's DynamoDB write operations in one process-wide lock (once; later calls do nothing)."""
    global _applied
    with _lock:
        if _applied:
            return
        from moto.dynamodb.models import DynamoDBBackend

        for name in _WRITES:
            setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name)))
        _applied = True


def _serialised(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return write(*args, **kwargs)

    return locked
