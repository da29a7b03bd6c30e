"""Route the pipeline's EventBridge events to an SQS queue in moto, as a downstream consumer would."""

from __future__ import annotations

import json
import uuid
from typing import Any


class EventCapture:
    def __init__(self, stack: Any, *, bus: str = "default") -> None:
        self._sqs = stack.client("sqs")
        events = stack.client("events")
        # moto keeps one state per process, shared by every test's server: unique names keep captures apart.
        suffix = uuid.uuid4().hex[:12]
        self.queue_url = self._sqs.create_queue(QueueName=f"job-events-{suffix}")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=f"seedance-job-events-{suffix}",
            EventBusName=bus,
            EventPattern=json.dumps({"source": ["seedance.pipeline"]}),
        )
        events.put_targets(
            Rule=f"seedance-job-events-{suffix}", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}]
        )
        self.received: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            batch = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = batch.get("Messages", [])
            if not messages:
                return self.received
            for message in messages:
                self.received.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
