"""What the HTTP routes need of the server that hosts them, as a Protocol: the routes (ark_routes.py,
result_files.py) sit below server.py, which imports them, so they name the server only by what they use of it."""

from __future__ import annotations

from typing import Any, Protocol

from .knobs import Counters, Knobs
from .tasks import Simulator, TaskRecord


class SimulatorHost(Protocol):
    @property
    def simulator(self) -> Simulator: ...

    @property
    def counters(self) -> Counters: ...

    @property
    def knobs(self) -> Knobs: ...

    @property
    def image_fetch_timeout(self) -> float: ...

    def task_payload(self, task: TaskRecord, dialect: str) -> dict[str, Any]: ...
