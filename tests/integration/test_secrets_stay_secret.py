"""The API key never leaves the secret: not in logs, metrics, job records, sidecars, events or handler answers.

The whole pipeline runs with the recognisable API_KEY of tests.support.stack_settings over successes, a rejection, a provider failure
and a refused key, while everything it writes anywhere is captured and searched for the key.
"""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from seedance_local.harness import LocalPipeline
from seedance_pipeline.models import JobStatus
from seedance_pipeline.observability import logger as pipeline_logger
from tests.support.images import image_bytes
from tests.support.stack_settings import API_KEY, FAST

PREFIX = "uploads/secrets/"


def route_job_events_to_a_queue(stack) -> str:
    """A rule on the default bus for everything the pipeline publishes, delivering to an SQS queue."""
    sqs, events = stack.client("sqs"), stack.client("events")
    suffix = uuid.uuid4().hex[:12]  # moto's state is shared by every test in the process
    queue_url = sqs.create_queue(QueueName=f"seedance-job-events-capture-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=f"capture-seedance-job-events-{suffix}",
        EventBusName="default",
        EventPattern=json.dumps({"source": ["seedance.pipeline"]}),
        State="ENABLED",
    )
    events.put_targets(
        Rule=f"capture-seedance-job-events-{suffix}",
        EventBusName="default",
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )
    return queue_url


def drain(stack, queue_url: str) -> list[str]:
    sqs = stack.client("sqs")
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# The last poll finds nothing to do, and Powertools warns that it has no metrics to print.
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_api_key_appears_in_no_output_of_the_pipeline(stack, sim, capfd, caplog):
    caplog.set_level(logging.INFO)  # every library's records at INFO and above, besides the pipeline's own logger
    queue_url = route_job_events_to_a_queue(stack)
    log_stream = io.StringIO()
    handler_answers: list[dict] = []
    original_stream = pipeline_logger.registered_handler.stream  # type: ignore[attr-defined]
    original_level = pipeline_logger.log_level
    pipeline = LocalPipeline(
        stack,
        api_base_url=sim.base_url,
        log_stream=log_stream,
        **{**FAST, "POWERTOOLS_METRICS_DISABLED": "false"},  # metrics are printed to stdout: check them too
    )
    pipeline.__enter__()
    try:
        pipeline_logger.setLevel("DEBUG")  # what an operator debugging a stack would turn on
        image = image_bytes(640, 480)

        sim.knobs.fail_next = 1  # the first task the provider creates ends FAILURE
        uploads = [
            ("fails.jpg", image, {"resolution": "480p"}),
            ("good-1.jpg", image, {"resolution": "480p"}),
            ("good-2.jpg", image, {"resolution": "480p", "return-last-frame": "true", "prompt": "a slow pan"}),
            ("tiny.jpg", image_bytes(100, 100), {}),
        ]
        for name, data, metadata in uploads:
            handler_answers.append(pipeline.submit(pipeline.upload(PREFIX + name, data, metadata)))
        jobs = pipeline.run_until_terminal(timeout=60)
        handler_answers.append(pipeline.poll(timeout_seconds=30))

        # A refused key (the provider's 401) is where a key most often slips into a log line.
        sim.knobs.api_key = "sk-someone-elses-key"
        handler_answers.append(pipeline.submit(pipeline.upload(PREFIX + "refused-key.jpg", image)))
        refused = pipeline.jobs()[PREFIX + "refused-key.jpg"]

        client_repr = repr(pipeline.runtime.provider())
        settings_repr = repr(pipeline.runtime.settings)
        runtime_repr = repr(pipeline.runtime)
    finally:
        pipeline.__exit__(None, None, None)
        pipeline_logger.registered_handler.setStream(original_stream)  # type: ignore[attr-defined]
        pipeline_logger.setLevel(original_level)

    # The run did what it should, so the captures below cover every kind of outcome.
    statuses = {key.removeprefix(PREFIX): job.status for key, job in jobs.items()}
    assert statuses == {
        "fails.jpg": JobStatus.FAILED,
        "good-1.jpg": JobStatus.SUCCEEDED,
        "good-2.jpg": JobStatus.SUCCEEDED,
        "tiny.jpg": JobStatus.REJECTED,
    }
    assert refused.status is JobStatus.WAITING
    assert refused.last_error is not None
    assert refused.last_error.code == "PROVIDER_AUTH"

    s3, dynamodb = stack.client("s3"), stack.client("dynamodb")
    items = dynamodb.scan(TableName=stack.table_name)["Items"]
    sidecar_keys = [
        obj["Key"]
        for obj in s3.list_objects_v2(Bucket=stack.output_bucket, Prefix="videos/").get("Contents", [])
        if obj["Key"].endswith(".json")
    ]
    sidecars = [s3.get_object(Bucket=stack.output_bucket, Key=key)["Body"].read().decode() for key in sidecar_keys]
    job_events = drain(stack, queue_url)
    captured = capfd.readouterr()

    captures = {
        "pipeline log": log_stream.getvalue(),
        "stdout": captured.out,
        "stderr": captured.err,
        "log records": "\n".join(record.getMessage() + " " + repr(record.__dict__) for record in caplog.records),
        "jobs table": json.dumps(items),
        "sidecars": "\n".join(sidecars),
        "job events": "\n".join(job_events),
        "handler answers": json.dumps(handler_answers),
        "SeedanceClient repr": client_repr,
        "Settings repr": settings_repr,
        "Runtime repr": runtime_repr,
    }

    # Each capture really holds what it should, so a leak would have been seen.
    assert "job SUCCEEDED" in captures["pipeline log"]
    assert "job REJECTED" in captures["pipeline log"]
    assert "refused the API key" in captures["pipeline log"]
    assert "JobsSubmitted" in captures["stdout"]  # the Powertools metrics (EMF) lines
    assert len(items) >= 5
    assert len(sidecars) == 2
    assert len(job_events) == 4  # one per terminal job: 2 SUCCEEDED, 1 FAILED, 1 REJECTED
    assert {json.loads(body)["detail-type"] for body in job_events} == {
        "Video Generation Succeeded",
        "Video Generation Failed",
        "Video Generation Rejected",
    }
    assert len(handler_answers) == 6
    assert client_repr.startswith("ProviderClient(") and "dialect='unified'" in client_repr
    assert stack.secret_id in settings_repr  # the secret is named, never its value

    leaks = [name for name, text in captures.items() if API_KEY in text]
    assert leaks == [], f"the API key appears in: {', '.join(leaks)}"
    # Not even the random part alone (e.g. a masked 'sk-te...' prefix followed by the rest).
    assert [name for name, text in captures.items() if API_KEY.removeprefix("sk-test-") in text] == []
