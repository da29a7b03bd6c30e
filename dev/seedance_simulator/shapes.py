"""The query answer, in the documented shape or one of the variants gateways of this family really send.

The video URL is placed where each variant puts it (see `Knobs.response_shape`):

    documented         data.output and data.outputs[0]
    outputs_list       data.outputs[0] only
    result_url         top-level result_url
    content_video_url  data.content.video_url
    nested_data        data.data.content.video_url (the upstream body wrapped once more)
    top_video_url      top-level video_url
    top_url            top-level url
    lowercase_status   documented, with upstream statuses queued/running/succeeded/failed
    fail_reason_url    documented, and fail_reason holds the URL too (old gateways)
    missing_url        SUCCESS without any URL
    non_string_url     data.output is a number, no other URL

`Knobs.status_override` replaces the status with any string, verbatim, and carries no result.

When the last frame was asked for, SUCCESS carries it at data.content.last_frame_url and data.last_frame_url
(plus top-level last_frame_url for the top_* shapes, data.data.content.last_frame_url for nested_data).
"""

from __future__ import annotations

from typing import Any

from .task_states import CANCELLED, EXPIRED, FAILURE, IN_PROGRESS, NOT_START, QUEUED, SUCCESS
from .tasks import TaskRecord

_LOWERCASE = {NOT_START: "queued", QUEUED: "queued", IN_PROGRESS: "running", SUCCESS: "succeeded", FAILURE: "failed"}
# The gateway has no status of its own for these (reached through the native dialect on the same tasks): it passes
# the upstream's lower-case value through, as gateways of this family do.
_UPSTREAM_ONLY = {CANCELLED: "cancelled", EXPIRED: "expired"}


def _epoch(value: float | None) -> int:
    # The gateway reports whole Unix seconds and 0 for "not yet".
    return int(value) if value is not None else 0


def _merge_last_frame(data: dict[str, Any], last_frame_url: str) -> None:
    content = data.setdefault("content", {})
    content["last_frame_url"] = last_frame_url
    data["last_frame_url"] = last_frame_url


def query_payload(
    task: TaskRecord,
    now: float,
    shape: str,
    video_url: str,
    last_frame_url: str | None,
    status_override: str | None = None,
) -> dict[str, Any]:
    """The body of GET /v2/videos/generations/{task_id} for this task right now."""
    status = task.status
    if status in _UPSTREAM_ONLY:
        shown = _UPSTREAM_ONLY[status]
    else:
        shown = _LOWERCASE[status] if shape == "lowercase_status" else status
    payload: dict[str, Any] = {
        "task_id": task.task_id,
        "status": shown,
        "fail_reason": task.fail_reason if status in (FAILURE, CANCELLED, EXPIRED) else "",
        "submit_time": _epoch(task.submitted_at),
        "start_time": _epoch(task.started_at),
        "finish_time": _epoch(task.finished_at),
        "progress": task.progress(now),
        "data": {},
    }
    if status_override is not None:
        # A status the simulator never reaches on its own (UNKNOWN, SUBMITTED, cancelled, expired): sent as is,
        # with no result, so clients can be tested on how they treat it.
        payload["status"] = status_override
        return payload
    if status == FAILURE:
        code = "OutputVideoSensitiveContentDetected" if task.planned_failure else "InternalServiceError"
        payload["data"] = {"error": {"code": code, "message": task.fail_reason}}
        return payload
    if status != SUCCESS:
        return payload

    payload["usage"] = {"completion_tokens": task.usage_tokens, "total_tokens": task.usage_tokens}
    data: dict[str, Any] = {}
    if shape in ("documented", "lowercase_status", "fail_reason_url"):
        data = {"output": video_url, "outputs": [video_url]}
        if shape == "fail_reason_url":
            payload["fail_reason"] = video_url
    elif shape == "outputs_list":
        data = {"outputs": [video_url]}
    elif shape == "result_url":
        payload["result_url"] = video_url
    elif shape == "content_video_url":
        data = {"content": {"video_url": video_url}}
    elif shape == "nested_data":
        inner: dict[str, Any] = {"video_url": video_url}
        if last_frame_url:
            inner["last_frame_url"] = last_frame_url
        data = {"data": {"content": inner}}
    elif shape == "top_video_url":
        payload["video_url"] = video_url
    elif shape == "top_url":
        payload["url"] = video_url
    elif shape == "non_string_url":
        data = {"output": 12345}
    elif shape == "missing_url":
        return payload  # SUCCESS and nothing to fetch: the client must treat it as a failure
    if last_frame_url and shape != "non_string_url":
        _merge_last_frame(data, last_frame_url)
        if shape.startswith("top_"):
            payload["last_frame_url"] = last_frame_url
    payload["data"] = data
    return payload
