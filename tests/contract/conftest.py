"""The vendor's own client (`volcenginesdkarkruntime.Ark`, the Ark runtime SDK) against one simulator for the whole
contract run, over real HTTP on loopback; the simulator is reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from volcenginesdkarkruntime import Ark

from seedance_simulator import SimulatorServer
from tests.support.simulator_client import API_KEY, FAST


@pytest.fixture(scope="session")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(api_key=API_KEY, knobs=FAST.copy()) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _fresh_state(server: SimulatorServer) -> None:
    server.reset()
    # Acceptance is what these tests are about: an empty video body instead of a render keeps them fast.
    server.knobs.video_body_factory = lambda task: (0, [])


@pytest.fixture
def ark(server: SimulatorServer) -> Iterator[Ark]:
    """The SDK as a user builds it, pointed at the simulator. No retries: each call is one request, so the
    simulator's counters and one-shot knobs mean what they say; no proxy from the environment (loopback)."""
    http = httpx.Client(trust_env=False, timeout=30)
    yield Ark(base_url=server.ark_base_url, api_key=API_KEY, max_retries=0, http_client=http)
    http.close()
