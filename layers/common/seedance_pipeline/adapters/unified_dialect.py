"""The unified gateway dialect (`/v2/videos/generations`): its paths, where its answers keep the task id, and how a
task's answer reads (docs/provider-api.md, "The unified gateway format" and "Where result URLs are found")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from seedance_pipeline.models import ProviderState, TaskClaim, TaskResult
from seedance_pipeline.redaction import redact_tokens

GENERATIONS_PATH = "/v2/videos/generations"
MAX_TASK_ID_LENGTH = 256

STATE_BY_STATUS = {
    "NOT_START": ProviderState.PENDING,
    "SUBMITTED": ProviderState.PENDING,
    "QUEUED": ProviderState.PENDING,
    "PENDING": ProviderState.PENDING,
    "UNKNOWN": ProviderState.PENDING,
    "IN_PROGRESS": ProviderState.RUNNING,
    "RUNNING": ProviderState.RUNNING,
    "PROCESSING": ProviderState.RUNNING,
    "SUCCESS": ProviderState.SUCCEEDED,
    "SUCCEEDED": ProviderState.SUCCEEDED,
    "FAILURE": ProviderState.FAILED,
    "FAILED": ProviderState.FAILED,
    "CANCELLED": ProviderState.FAILED,
    "CANCELED": ProviderState.FAILED,
    "EXPIRED": ProviderState.FAILED,
}

# Where gateways of this family put the video and last-frame URLs, in the order of docs/provider-api.md
# ("Where result URLs are found").
_VIDEO_URL_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("data", "output"),
    ("data", "outputs", 0),
    ("result_url",),
    ("data", "content", "video_url"),
    ("data", "data", "content", "video_url"),
    ("video_url",),
    ("url",),
)
_LAST_FRAME_URL_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("data", "content", "last_frame_url"),
    ("data", "last_frame_url"),
    ("last_frame_url",),
)
_FAILURE_TEXT_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("fail_reason",),
    ("data", "error", "message"),
    ("error", "message"),
    ("message",),
)

# Where a failed task's code sits apart from its text (a gateway's `data.error`, Ark's `error`).
_FAILURE_CODE_PATHS: tuple[tuple[str | int, ...], ...] = (("data", "error", "code"), ("error", "code"))

MISSING = object()


def dig(document: Any, path: tuple[str | int, ...]) -> Any:
    node = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or len(node) <= step:
                return MISSING
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return MISSING
            node = node[step]
    return node


def first_present(document: Any, paths: tuple[tuple[str | int, ...], ...]) -> Any:
    for path in paths:
        value = dig(document, path)
        if value is not MISSING and value not in (None, ""):
            return value
    return MISSING


def usable_task_id(value: Any) -> str | None:
    """A task id we can query, log and show: a printable string (or a number) of sane length, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    # Blank, huge or control characters: not an id we can query, log and show; a person must look.
    if not value.strip() or len(value) > MAX_TASK_ID_LENGTH or not value.isprintable():
        return None
    # "." and "..": urllib3 removes dot segments from the status URL's path, so the task could never be asked.
    if value in (".", ".."):
        return None
    return value


def task_id_in(payload: dict[str, Any], paths: tuple[tuple[str | int, ...], ...]) -> str | None:
    """The first present id among `paths`, or None when none is usable."""
    for path in paths:
        value = dig(payload, path)
        if value is MISSING or value is None or value == "":
            continue
        return usable_task_id(value)
    return None


def task_result(
    task_id: str,
    body: dict[str, Any],
    *,
    state_by_status: dict[str, ProviderState],
    video_paths: tuple[tuple[str | int, ...], ...],
    last_frame_paths: tuple[tuple[str | int, ...], ...],
    failure_paths: tuple[tuple[str | int, ...], ...],
    echoed_id: Any,
) -> TaskResult:
    """A task answer read through one dialect's tables; what neither dialect sends is simply absent."""
    # Ark answers echo `callback_url` (its token): no text of an answer is kept, logged or shown with one.
    raw_status = redact_tokens(str(body.get("status") or "UNKNOWN")[:100])
    state = state_by_status.get(raw_status.strip().upper(), ProviderState.PENDING)
    video = first_present(body, video_paths)
    last_frame = first_present(body, last_frame_paths)
    malformed = (video is not MISSING and not isinstance(video, str)) or (
        last_frame is not MISSING and not isinstance(last_frame, str)
    )
    failure = failure_code = None
    if state is ProviderState.FAILED:
        code = first_present(body, _FAILURE_CODE_PATHS)
        failure_code = redact_tokens(str(code))[:100] if isinstance(code, str | int) and str(code).strip() else None
        text = first_present(body, failure_paths)
        failure = (
            redact_tokens(str(text))[:1000]
            if text is not MISSING
            else f"the provider reported {raw_status} without a reason"
        )
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    progress = body.get("progress")
    return TaskResult(
        task_id=echoed_id if isinstance(echoed_id, str) and echoed_id else task_id,
        state=state,
        raw_status=raw_status,
        progress=redact_tokens(str(progress)[:100]) if progress is not None else None,
        video_url=video if isinstance(video, str) else None,
        last_frame_url=last_frame if isinstance(last_frame, str) else None,
        failure_reason=failure,
        failure_code=failure_code,
        usage=usage,
        malformed_url=malformed,
    )


def parse_task(task_id: str, payload: dict[str, Any]) -> TaskResult:
    body = unwrapped(payload)
    return task_result(
        task_id,
        body,
        state_by_status=STATE_BY_STATUS,
        video_paths=_VIDEO_URL_PATHS,
        last_frame_paths=_LAST_FRAME_URL_PATHS,
        failure_paths=_FAILURE_TEXT_PATHS,
        echoed_id=body.get("task_id"),
    )


def read_claim(body: dict[str, Any], *, id_field: str) -> TaskClaim:
    """A callback body's claimed state by the dialect's status table (None for a status the table does not know:
    it may be a terminal one), and the task id it names."""
    status = body.get("status")
    state = STATE_BY_STATUS.get(status.strip().upper()) if isinstance(status, str) else None
    return TaskClaim(state=state, task_id=usable_task_id(body.get(id_field)))


def unwrapped(payload: dict[str, Any]) -> dict[str, Any]:
    """Some gateways wrap the whole task in {"code": 0, "data": {...task...}}."""
    inner = payload.get("data")
    if "status" not in payload and isinstance(inner, dict) and "status" in inner:
        return inner
    return payload


class UnifiedDialect:
    """A gateway's format: no task list to look a lost submission up in, and no cancel."""

    name = "unified"
    can_list = False
    can_cancel = False

    def create_path(self) -> str:
        return GENERATIONS_PATH

    def task_path(self, task_id: str) -> str:
        return f"{GENERATIONS_PATH}/{quote(task_id, safe='')}"

    def list_path(self) -> str:
        raise NotImplementedError("the unified gateway format has no task list")

    def created_task_id(self, payload: dict[str, Any]) -> str | None:
        # `data.task_id` for gateways that wrap it, native `id` for those that pass the Ark answer through.
        return task_id_in(payload, (("task_id",), ("data", "task_id"), ("id",)))

    def parse_task(self, task_id: str, payload: dict[str, Any]) -> TaskResult:
        return parse_task(task_id, payload)

    def read_claim(self, payload: dict[str, Any]) -> TaskClaim:
        return read_claim(unwrapped(payload), id_field="task_id")
