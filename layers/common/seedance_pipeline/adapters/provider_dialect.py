"""What a provider format (a dialect) decides, as the client and the answer judge both see it. A module of its own so
provider_client.py and provider_answers.py both import it and neither imports the other."""

from __future__ import annotations

from typing import Any, Protocol

from seedance_pipeline.models import TaskResult


class Dialect(Protocol):
    """What one provider format decides; the client decides everything about HTTP."""

    name: str
    can_list: bool
    can_cancel: bool

    def create_path(self) -> str: ...
    def task_path(self, task_id: str) -> str: ...
    def created_task_id(self, payload: dict[str, Any]) -> str | None: ...
    def parse_task(self, task_id: str, payload: dict[str, Any]) -> TaskResult: ...
