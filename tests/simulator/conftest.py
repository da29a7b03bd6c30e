"""One simulator for the whole simulator test run (renders stay cached), reset before every test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The package lives in dev/ and the helpers beside this file. pyproject puts dev/ on the path; this keeps
# `pytest tests/simulator` working under any import mode too.
for _path in (Path(__file__).resolve().parents[2] / "dev", Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from seedance_simulator import SimulatorServer  # noqa: E402
from simulator_support import API_KEY, FAST, Client, ImageHost  # noqa: E402


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
