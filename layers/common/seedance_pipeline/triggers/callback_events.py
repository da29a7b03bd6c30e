"""The two event shapes the callback function receives: a provider's POST through the Function URL (payload
format 2.0), and the hand-off the function sends itself. No token, query string or URL leaves this module in a
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


def handoff_event(job_id: str) -> dict[str, Any]:
    return {HANDOFF_KEY: {"job_id": job_id}}


def parse_callback_event(event: dict[str, Any]) -> CallbackRequest | CallbackHandoff:
    # A Function URL request always has Lambda's own top-level keys (version, requestContext, ...): a caller can
    # put anything in the body but never a top-level `seedance_callback`, so only our own Invoke reads as a hand-off.
    handoff = event.get(HANDOFF_KEY)
    if isinstance(handoff, dict) and "requestContext" not in event:
        job_id = handoff.get("job_id")
        return CallbackHandoff(job_id=job_id if isinstance(job_id, str) else "")
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
