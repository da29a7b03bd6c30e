"""PollFunction: every minute, move due jobs on until the invocation's window closes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.observability import logger, metrics, tracer
from seedance_pipeline.runtime import shared_runtime


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    time_left = lambda: context.get_remaining_time_in_millis() / 1000  # noqa: E731
    runtime = shared_runtime()
    runtime.time_left = time_left  # one invocation at a time per container
    report = run_poll(runtime, owner=context.aws_request_id, time_left=time_left)
    logger.info("poll finished", extra=report.model_dump())
    return report.model_dump()
