"""CallbackFunction: a provider's POST through the public Function URL. It checks the token, reads the job once
and hands a claimed end to CallbackWorkerFunction; it holds no right to change a job or call the provider."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from seedance_pipeline.logic.callback_intake import answer_callback
from seedance_pipeline.observability import logger, metrics, tracer
from seedance_pipeline.runtime import shared_runtime
from seedance_pipeline.triggers.callback_events import parse_callback_event


# The event is never logged: a Function URL request carries the job's token in its query string.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer_callback(parse_callback_event(event), shared_runtime()).as_http()
