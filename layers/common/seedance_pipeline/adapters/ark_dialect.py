"""The native Ark v3 dialect (Volcengine Ark, BytePlus ModelArk): `/contents/generations/tasks`, its answers, and how
a task in its list is recognised as the one a lost answer was about (docs/provider-api.md, "The native Ark v3 API").

The platform sends numbers as strings here and there and leaves fields out; every read tolerates both.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from seedance_pipeline.adapters.unified_dialect import (
    MISSING,
    STATE_BY_STATUS,
    dig,
    read_claim,
    task_id_in,
    task_result,
    usable_task_id,
)
from seedance_pipeline.models import TaskClaim, TaskResult
from seedance_pipeline.redaction import redact_tokens

TASKS_PATH = "/contents/generations/tasks"
# The list comes newest first, and a lost answer is looked up within seconds, so the first pages hold the task.
LIST_PAGE_SIZE = 100
# Five pages cover 500 tasks of one model in the look-up window (two minutes): more than any account we know of.
LIST_MAX_PAGES = 5
# Ratios that ask the platform to choose: the task then reports the ratio it chose, not what was sent.
_CHOSEN_BY_PROVIDER = {"adaptive", "keep_ratio"}

_VIDEO_URL_PATHS: tuple[tuple[str | int, ...], ...] = (("content", "video_url"), ("video_url",))
_LAST_FRAME_URL_PATHS: tuple[tuple[str | int, ...], ...] = (("content", "last_frame_url"), ("last_frame_url",))
_FAILURE_TEXT_PATHS: tuple[tuple[str | int, ...], ...] = (("error", "message"), ("error", "code"), ("message",))


def as_number(value: Any) -> float | None:
    """A number, or a string holding one (the platform sends both); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def parse_task(task_id: str, payload: dict[str, Any]) -> TaskResult:
    usage = payload.get("usage")
    if isinstance(usage, dict):
        # Token counts sent as strings are still token counts; the job keeps numbers only.
        numbers = {key: as_number(value) for key, value in usage.items()}
        payload = {
            **payload,
            "usage": {key: int(v) if v.is_integer() else v for key, v in numbers.items() if v is not None},
        }
    result = task_result(
        task_id,
        payload,
        state_by_status=STATE_BY_STATUS,
        video_paths=_VIDEO_URL_PATHS,
        last_frame_paths=_LAST_FRAME_URL_PATHS,
        failure_paths=_FAILURE_TEXT_PATHS,
        echoed_id=payload.get("id"),
    )
    code, message = dig(payload, ("error", "code")), dig(payload, ("error", "message"))
    if result.failure_reason and isinstance(code, str | int) and isinstance(message, str) and message.strip():
        # The code says what kind of failure (moderation, parameters); the message alone often does not.
        result = result.model_copy(update={"failure_reason": redact_tokens(f"{code}: {message}")[:1000]})
    return result


def matches(item: Any, body: dict[str, Any], *, since: float, until: float) -> bool:
    """Whether a listed task is, by what the list shows, the one `body` created in the window.

    The list shows a task's settings and the seed it was made with, never its prompt, images or `callback_url`
    (docs/provider-api.md, "Lost answer"), so two uploads' identical requests differ there in their seeds alone. A
    task matches only when it shows the very seed `body` sent; a body with no seed, or -1 (the platform draws one),
    matches nothing. The settings it shows must agree too; a setting it leaves out is passed over.
    """
    if not isinstance(item, dict) or usable_task_id(item.get("id")) is None:
        return False
    sent_seed = body.get("seed")
    if not isinstance(sent_seed, int) or isinstance(sent_seed, bool) or sent_seed < 0:
        return False
    if "seed" not in item or not _same(item["seed"], sent_seed):
        return False
    if item.get("model") != body.get("model"):
        return False
    created = as_number(item.get("created_at"))
    if created is None or not since <= created <= until:
        return False
    for field in ("resolution", "duration", "frames"):
        if field in body and field in item and not _same(item[field], body[field]):
            return False
    if body.get("ratio") not in _CHOSEN_BY_PROVIDER and "ratio" in item and item["ratio"] != body.get("ratio"):
        return False
    shown = _prompt_of(item.get("content"))  # never shown by the platform today; a prompt shown must agree
    return shown is None or shown == _prompt_of(body.get("content"))


def _same(shown: Any, sent: Any) -> bool:
    if isinstance(sent, bool) or isinstance(shown, bool):
        return bool(shown == sent)
    if isinstance(sent, int | float):
        return as_number(shown) == float(sent)
    return bool(shown == sent)


def _prompt_of(content: Any) -> str | None:
    """The text item of a content list (a request's, or a listed task's should the platform ever show it)."""
    if not isinstance(content, list):
        return None
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            return str(part["text"])
    return None


def oldest_created(items: list[Any]) -> float | None:
    stamps = [as_number(item.get("created_at")) for item in items if isinstance(item, dict)]
    known = [stamp for stamp in stamps if stamp is not None]
    return min(known) if len(known) == len(items) and known else None


class ArkDialect:
    """Ark's format: a task list to look a lost submission up in, and DELETE to cancel a queued task."""

    name = "ark"
    can_list = True
    can_cancel = True

    def create_path(self) -> str:
        return TASKS_PATH

    def task_path(self, task_id: str) -> str:
        return f"{TASKS_PATH}/{quote(task_id, safe='')}"

    def list_path(self) -> str:
        return TASKS_PATH

    def created_task_id(self, payload: dict[str, Any]) -> str | None:
        return task_id_in(payload, (("id",),))

    def parse_task(self, task_id: str, payload: dict[str, Any]) -> TaskResult:
        return parse_task(task_id, payload)

    def read_claim(self, payload: dict[str, Any]) -> TaskClaim:
        return read_claim(payload, id_field="id")

    def list_items(self, payload: dict[str, Any]) -> list[Any] | None:
        items = payload.get("items")
        if items is MISSING or not isinstance(items, list):
            return None
        return items
