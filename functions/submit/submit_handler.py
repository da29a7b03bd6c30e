"""SubmitFunction: S3 (or EventBridge) object-created events in, one job per upload out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from seedance_pipeline.logic.submission import handle_event
from seedance_pipeline.observability import logger, metrics, tracer
from seedance_pipeline.runtime import shared_runtime
from seedance_pipeline.triggers.upload_events import parse_trigger_event


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = shared_runtime()
    # One invocation at a time per container: every provider call of this one ends before Lambda stops it.
    runtime.time_left = lambda: context.get_remaining_time_in_millis() / 1000
    report = handle_event(parse_trigger_event(event), runtime, owner=context.aws_request_id)
    # Returning normally even for rejected images: a poison upload must not make Lambda retry.
    return report.model_dump()
