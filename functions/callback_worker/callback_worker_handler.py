"""CallbackWorkerFunction: the hand-off of an accepted callback (an asynchronous Invoke from CallbackFunction
only). It confirms the claimed end with one status call and delivers, as a poll would."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from seedance_pipeline.logic.callback_worker import run_handoff
from seedance_pipeline.observability import logger, metrics, tracer
from seedance_pipeline.runtime import shared_runtime
from seedance_pipeline.triggers.callback_events import parse_handoff_event


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = shared_runtime()
    # One invocation at a time per container: the check and the delivery end before Lambda stops it.
    runtime.time_left = lambda: context.get_remaining_time_in_millis() / 1000
    result = run_handoff(parse_handoff_event(event), runtime, owner=context.aws_request_id)
    return {"status": result.value}
