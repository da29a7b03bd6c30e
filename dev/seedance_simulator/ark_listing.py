"""The native Ark task list: its query (pages and filters, with the platform's bounds) and the page it answers.

`GET /contents/generations/tasks?page_num=&page_size=&filter.status=&filter.task_ids=&filter.model=
&filter.service_tier=`; the vendor SDK sends `filter.task_ids` once per id. page_num and page_size are 1 to 500,
and the status filter takes queued, running, cancelled, succeeded or failed: not expired (docs/provider-api.md,
"The simulator against the vendor's client").
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import invalid_parameter
from .task_states import CANCELLED, EXPIRED, FAILURE, IN_PROGRESS, NOT_START, QUEUED, SUCCESS
from .tasks import TaskRecord

ARK_STATUS = {
    NOT_START: "queued",
    QUEUED: "queued",
    IN_PROGRESS: "running",
    SUCCESS: "succeeded",
    FAILURE: "failed",
    CANCELLED: "cancelled",
    EXPIRED: "expired",
}
ARK_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
LIST_STATUS_FILTERS = ("queued", "running", "cancelled", "succeeded", "failed")
PAGE_NUM_MAX = 500
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 10, 500
SERVICE_TIERS = ("default", "flex")


@dataclass(frozen=True)
class ListQuery:
    page_num: int
    page_size: int
    status: str | None
    task_ids: tuple[str, ...]
    model: str | None
    service_tier: str | None = None


def _positive_int(params: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    values = params.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise invalid_parameter(name, f"must be an integer (got {values[-1]!r}).") from None
    if not 1 <= value <= maximum:
        raise invalid_parameter(name, f"must be between 1 and {maximum} (got {value}).")
    return value


def _last(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_list_query(params: dict[str, list[str]]) -> ListQuery:
    status = _last(params, "filter.status")
    if status is not None and status not in LIST_STATUS_FILTERS:
        raise invalid_parameter("filter.status", f"must be one of {', '.join(LIST_STATUS_FILTERS)} (got {status!r}).")
    tier = _last(params, "filter.service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        raise invalid_parameter("filter.service_tier", f"must be one of {', '.join(SERVICE_TIERS)} (got {tier!r}).")
    # Repeated (what the vendor SDK sends), or comma-separated in one value: both reach the same set.
    task_ids = tuple(part for value in params.get("filter.task_ids", []) for part in value.split(",") if part)
    return ListQuery(
        page_num=_positive_int(params, "page_num", 1, PAGE_NUM_MAX),
        page_size=_positive_int(params, "page_size", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX),
        status=status,
        task_ids=task_ids,
        model=_last(params, "filter.model"),
        service_tier=tier,
    )


def select_tasks(tasks: list[TaskRecord], query: ListQuery) -> tuple[int, list[TaskRecord]]:
    """The matching tasks' total, and the requested page of them, newest first."""
    matching = [
        task
        for task in tasks
        if (query.status is None or ARK_STATUS[task.status] == query.status)
        and (not query.task_ids or task.task_id in query.task_ids)
        and (query.model is None or task.request.model == query.model)
        and (query.service_tier is None or task.request.service_tier == query.service_tier)
    ]
    # Creation order breaks ties between tasks created within the same clock tick.
    order = {id(task): i for i, task in enumerate(tasks)}
    matching.sort(key=lambda task: (task.submitted_at, order[id(task)]), reverse=True)
    start = (query.page_num - 1) * query.page_size
    return len(matching), matching[start : start + query.page_size]
