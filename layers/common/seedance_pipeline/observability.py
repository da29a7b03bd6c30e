"""The one place Powertools is configured: import `logger`, `metrics` and `tracer` from here.
(It reads the POWERTOOLS_* variables Powertools defines itself: the service and namespace once, and
POWERTOOLS_TRACE_DISABLED to skip the X-Ray import.)

Service name, namespace, log level and tracing switches come from the standard POWERTOOLS_* variables
that template.yaml sets. One metric per business event; names are the MetricName constants below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

# template.yaml sets the service to the stack's name, so stacks sharing an account keep their metrics apart.
SERVICE = os.getenv(constants.SERVICE_NAME_ENV) or "seedance-pipeline"
NAMESPACE = os.getenv(constants.METRICS_NAMESPACE_ENV) or "SeedancePipeline"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class _TracingOff:
    """Stands in for Powertools' Tracer when tracing is off: importing the X-Ray SDK alone costs a cold start
    more than half a second, for nothing."""

    def capture_lambda_handler(self, lambda_handler: Callable[..., Any] | None = None, **_: Any) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda handler: handler)

    def capture_method(self, method: Callable[..., Any] | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda wrapped: wrapped)


def _make_tracer() -> Any:
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return _TracingOff()
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


tracer = _make_tracer()


class MetricName:
    JOB_SUBMITTED = "JobsSubmitted"
    JOB_WAITING = "JobsWaiting"
    JOB_SUCCEEDED = "JobsSucceeded"
    JOB_FAILED = "JobsFailed"
    JOB_REJECTED = "JobsRejected"
    JOB_TIMED_OUT = "JobsTimedOut"
    PROVIDER_ERROR = "ProviderErrors"
    PROVIDER_AUTH_ERROR = "ProviderAuthErrors"
    SECRET_ERROR = "SecretErrors"  # noqa: S105 (a metric name)
    STALE_SLOTS_RELEASED = "StaleSlotsReleased"
    GENERATION_SECONDS = "GenerationSeconds"
    JOBS_IN_FLIGHT = "JobsInFlight"
    STATUS_CHECKS = "StatusChecks"
    DUPLICATE_EVENTS = "DuplicateEvents"
    TOKENS_SUBMITTED = "TokensSubmitted"
    TOKENS_BILLED = "TokensBilled"
    DAILY_TOKENS_COMMITTED = "DailyTokensCommitted"
    DAILY_TOKEN_BUDGET_USED_PERCENT = "DailyTokenBudgetUsedPercent"  # noqa: S105 (a metric name)
    CALLBACKS_RECEIVED = "CallbacksReceived"
    # A job that expected a callback and was found finished by a poll instead: a provider (or gateway, through a
    # CallbackField it ignores) that does not call back makes every job wait for the later first check.
    CALLBACKS_MISSED = "CallbacksMissed"
    # A genuine callback about a task a job never recorded (its POST was refused, or its answer lost): a task that
    # is billed while the job says it was not sent.
    CALLBACKS_ABOUT_UNKNOWN_TASKS = "CallbacksAboutUnknownTasks"
    # A paid video that cannot be written because the output bucket's KMS key refuses the functions: it waits for
    # the grant (an operator's fix) while the provider keeps it.
    DELIVERIES_BLOCKED_BY_KMS = "DeliveriesBlockedByKms"
    # New tasks sent because the provider's moderation flagged only an output (ResubmitOnOutputModeration).
    MODERATION_RESUBMISSIONS = "ModerationResubmissions"
    # A job recorded SUCCEEDED from its sidecar: an earlier delivery stored and named its outputs, then stopped (a
    # crash, a timeout) before recording the job, and the next check met a fault that would have ended it.
    DELIVERIES_RECOVERED = "DeliveriesRecovered"


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def count_provider_error(code: str) -> None:
    """ProviderErrors with the provider's error code as a dimension, so alarms and graphs can split by cause."""
    _count_by(MetricName.PROVIDER_ERROR, 1, "error_code", code[:250] or "unknown")


def count_tokens(name: str, model: str, tokens: int) -> None:
    """TokensSubmitted / TokensBilled with the model as a dimension, so spend can be split (and priced) by model."""
    _count_by(name, tokens, "model", model[:250] or "unknown")


def count_callback(outcome: str) -> None:
    """CallbacksReceived with its outcome (accepted, ignored, refused, failed) as a dimension: a burst of refused
    callbacks is someone guessing URLs, a lasting lack of accepted ones a provider that stopped calling."""
    _count_by(MetricName.CALLBACKS_RECEIVED, 1, "outcome", outcome)


def _count_by(name: str, value: float, dimension: str, dimension_value: str) -> None:
    # A metric of its own (single_metric): a dimension added to the shared `metrics` would apply to every metric
    # it flushes with it.
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=dimension_value)


@contextmanager
def job_log_context(job_id: str, task_id: str | None = None) -> Iterator[None]:
    """Put job_id (and task_id) on every log line this thread writes while it works on one job."""
    logger.thread_safe_append_keys(job_id=job_id, **({"task_id": task_id} if task_id else {}))
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(["job_id", "task_id"])


def add_task_id_to_logs(task_id: str) -> None:
    logger.thread_safe_append_keys(task_id=task_id)


__all__ = [
    "MetricName",
    "MetricUnit",
    "add_task_id_to_logs",
    "count",
    "count_callback",
    "count_provider_error",
    "count_tokens",
    "job_log_context",
    "logger",
    "metrics",
    "tracer",
]
