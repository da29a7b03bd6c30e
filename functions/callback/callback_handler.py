"""CallbackFunction: a provider's POST through the Function URL, or the hand-off the function sends itself."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from seedance_pipeline.logic.callback_intake import answer_callback, run_handoff
from seedance_pipeline.observability import logger, metrics, tracer
from seedance_pipeline.runtime import shared_runtime
from seedance_pipeline.triggers.callback_events import CallbackHandoff, parse_callback_event


# The event is never logged: a Function URL request carries the job's token in its query string.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = shared_runtime()
    # One invocation at a time per container: the hand-off's check and delivery end before Lambda stops it.
    runtime.time_left = lambda: context.get_remaining_time_in_millis() / 1000
    parsed = parse_callback_event(event)
    if isinstance(parsed, CallbackHandoff):
        return {"status": run_handoff(parsed, runtime, owner=context.aws_request_id).value}
    return answer_callback(parsed, runtime, function_name=context.invoked_function_arn).as_http()
