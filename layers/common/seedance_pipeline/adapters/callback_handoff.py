"""The hand-off of a callback to an asynchronous run of the callback worker function (Lambda Invoke, Event)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.errors import HandoffFailed
from seedance_pipeline.triggers.callback_events import handoff_event


class LambdaHandoff:
    """Built lazily: only the callback function pays for a Lambda client."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()

    def hand_off(self, job_id: str, *, function_name: str, task_id: str | None = None) -> None:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            client = self._client
        try:
            client.invoke(
                FunctionName=function_name,
                # Asynchronous: Lambda queues it and answers 202 at once; the provider's POST is answered meanwhile.
                InvocationType="Event",
                Payload=json.dumps(handoff_event(job_id, task_id)).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError") if isinstance(exc, ClientError) else ""
            raise HandoffFailed(f"the asynchronous invoke was refused ({code or type(exc).__name__})") from None
