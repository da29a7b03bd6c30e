"""The native Ark v3 dialect (Volcengine Ark, BytePlus ModelArk): `/contents/generations/tasks`, its answers, and how
a task in its list is recognised as the one a lost answer was about (docs/provider-api.md, "The native Ark v3 API").

The platform sends numbers as strings here and there and leaves fields out; every read tolerates both.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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
    """Whether a listed task is, by everything the list shows, the one `body` would have created in the window.

    A field the item leaves out proves nothing either way and is passed over; a field it shows must agree.
    """
    if not isinstance(item, dict) or usable_task_id(item.get("id")) is None:
        return False
    if item.get("model") != body.get("model"):
        return False
    created = as_number(item.get("created_at"))
    if created is None or not since <= created <= until:
        return False
    for field in ("resolution", "duration", "seed", "frames"):
        if field in body and field in item and not _same(item[field], body[field]):
            return False
    if body.get("ratio") not in _CHOSEN_BY_PROVIDER and "ratio" in item and item["ratio"] != body.get("ratio"):
        return False
    if "callback_url" in body and "callback_url" in item and not _same_job(item["callback_url"], body["callback_url"]):
        # The one field that tells two jobs' identical requests apart (the default prompt makes them common): a
        # task that calls another job back was made by that job's POST, never by ours.
        return False
    shown = _prompt_of(item.get("content"))
    return shown is None or shown == _prompt_of(body.get("content"))


def _same(shown: Any, sent: Any) -> bool:
    if isinstance(sent, bool) or isinstance(shown, bool):
        return bool(shown == sent)
    if isinstance(sent, int | float):
        return as_number(shown) == float(sent)
    return bool(shown == sent)


def _same_job(shown: Any, sent: Any) -> bool:
    """Whether two callback URLs name the same job: by their `job` parameter (the platform may re-encode a URL it
    echoes), else as strings."""
    jobs = [parse_qs(urlsplit(url).query).get("job") if isinstance(url, str) else None for url in (shown, sent)]
    if jobs[0] and jobs[1]:
        return bool(jobs[0] == jobs[1])
    return bool(shown == sent)


def _prompt_of(content: Any) -> str | None:
    """The text item of a content list (a request's, or a listed task's where the platform echoes it)."""
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
