"""One simulator for the whole simulator test run (renders stay cached), reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from seedance_simulator import SimulatorServer
from tests.support.simulator_client import API_KEY, FAST, Client, ImageHost


@pytest.fixture(scope="session")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(api_key=API_KEY, knobs=FAST.copy()) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _fresh_state(server: SimulatorServer) -> None:
    server.reset()
    server.image_fetch_timeout = 10.0


@pytest.fixture
def no_render(server: SimulatorServer) -> None:
    """For tests about acceptance only: serve an empty body instead of rendering a video."""
    server.knobs.video_body_factory = lambda task: (0, [])


@pytest.fixture
def client(server: SimulatorServer) -> Client:
    return Client(server)


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.close()
