"""Integration fixtures: moto in server mode built from template.yaml, the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from seedance_local.harness import LocalPipeline
from seedance_local.local_stack import LocalStack
from seedance_local.stack_template import load_template, translate_template
from seedance_simulator import Knobs, SimulatorServer
from tests.support.stack_settings import API_KEY, FAST


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(api_key=API_KEY, knobs=Knobs(api_key=API_KEY, run_seconds=0.5)) as server:
        yield server


@pytest.fixture
def sim(simulator: SimulatorServer) -> Iterator[SimulatorServer]:
    """The shared simulator with fresh knobs and counters for each test."""
    defaults = Knobs(api_key=API_KEY, run_seconds=0.5)
    simulator.knobs.restore(defaults)
    simulator.counters.reset()
    yield simulator
    simulator.knobs.restore(defaults)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    local = LocalStack.start(api_key=API_KEY)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def make_pipeline(stack: LocalStack, sim: SimulatorServer):
    """Build a LocalPipeline with extra environment overrides; closed at teardown."""
    opened: list[LocalPipeline] = []

    def build(log_stream=None, **overrides: str) -> LocalPipeline:
        pipeline = LocalPipeline(stack, api_base_url=sim.base_url, log_stream=log_stream, **{**FAST, **overrides})
        opened.append(pipeline.__enter__())
        return pipeline

    yield build
    for pipeline in reversed(opened):
        pipeline.__exit__(None, None, None)


@pytest.fixture
def pipeline(make_pipeline) -> LocalPipeline:
    return make_pipeline()


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written (SAM)."""
    return load_template()


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform (CloudFormation)."""
    return translate_template(sam)


@pytest.fixture(scope="module")
def module_stack() -> Iterator[LocalStack]:
    """One moto server for a whole module, for test files whose tests use distinct keys (starting one takes seconds)."""
    with LocalStack.start(api_key=API_KEY) as local:
        yield local
