"""The one place Powertools is configured: import `logger`, `metrics` and `tracer` from here.

Service name, namespace, log level and tracing switches come from the standard POWERTOOLS_* variables
that template.yaml sets. One metric per business event; names are the MetricName constants below.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="seedance-pipeline")
metrics = Metrics(namespace="SeedancePipeline", service="seedance-pipeline")
tracer = Tracer(service="seedance-pipeline")


class MetricName:
    JOB_SUBMITTED = "JobsSubmitted"
    JOB_WAITING = "JobsWaiting"
    JOB_SUCCEEDED = "JobsSucceeded"
    JOB_FAILED = "JobsFailed"
    JOB_REJECTED = "JobsRejected"
    JOB_TIMED_OUT = "JobsTimedOut"
    PROVIDER_ERROR = "ProviderErrors"
    PROVIDER_AUTH_ERROR = "ProviderAuthErrors"
    GENERATION_SECONDS = "GenerationSeconds"
    JOBS_IN_FLIGHT = "JobsInFlight"
    STATUS_CHECKS = "StatusChecks"
    DUPLICATE_EVENTS = "DuplicateEvents"


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


__all__ = ["MetricName", "MetricUnit", "count", "logger", "metrics", "tracer"]
