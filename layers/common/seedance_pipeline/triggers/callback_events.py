"""The two callback event shapes: a provider's POST through CallbackFunction's Function URL (payload format 2.0),
and the hand-off the intake sends CallbackWorkerFunction. No token, query string or URL leaves this module in a
log line: the parsed request keeps them only to be checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HANDOFF_KEY = "seedance_callback"


@dataclass(frozen=True)
class CallbackRequest:
    method: str
    job_id: str | None
    # repr=False: a stray debug print or a traceback's locals never shows the token.
    token: str | None = field(repr=False)
    body: str = field(repr=False)
    is_base64: bool = False


@dataclass(frozen=True)
class CallbackHandoff:
    job_id: str
    # The task a genuine callback named for a job that recorded none (its POST was refused): evidence to confirm.
    task_id: str | None = None


# A task id is an opaque provider string; anything longer is not one (and an event stays small).
_MAX_TASK_ID_CHARS = 256


def handoff_event(job_id: str, task_id: str | None = None) -> dict[str, Any]:
    return {HANDOFF_KEY: {"job_id": job_id, **({"task_id": task_id} if task_id else {})}}


def parse_handoff_event(event: dict[str, Any]) -> CallbackHandoff:
    """The worker's event. Only the intake can invoke the worker; a shape it does not know is no job at all."""
    handoff = event.get(HANDOFF_KEY)
    if not isinstance(handoff, dict):
        return CallbackHandoff(job_id="")
    job_id, task_id = handoff.get("job_id"), handoff.get("task_id")
    usable_task = isinstance(task_id, str) and 0 < len(task_id) <= _MAX_TASK_ID_CHARS
    return CallbackHandoff(job_id=job_id if isinstance(job_id, str) else "", task_id=task_id if usable_task else None)


def parse_callback_event(event: dict[str, Any]) -> CallbackRequest:
    """A Function URL request. A caller controls its body and query, never its top-level keys, and the intake
    reads nothing but the method, the query's job and token, and the body: no request reads as a hand-off."""
    from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

    request = LambdaFunctionUrlEvent(event)
    params = request.query_string_parameters or {}
    try:
        method = request.request_context.http.method or ""
    except (KeyError, TypeError):
        method = ""
    body = request.body
    return CallbackRequest(
        method=method,
        job_id=params.get("job"),
        token=params.get("token"),
        body=body if isinstance(body, str) else "",
        is_base64=bool(request.is_base64_encoded),
    )
