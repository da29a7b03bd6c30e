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
def dialect(request: pytest.FixtureRequest) -> str:
    """The provider dialect a pipeline speaks: `unified` unless a module parametrizes it (DIALECTS)."""
    return str(getattr(request, "param", "unified"))


# For `@pytest.mark.parametrize("dialect", DIALECTS, indirect=True)`: the suite runs against both of the
# simulator's dialects over real HTTP, the gateway's `/v2/videos/generations` and native Ark's `/api/v3`.
DIALECTS = ["unified", "ark"]


@pytest.fixture
def make_pipeline(stack: LocalStack, sim: SimulatorServer, dialect: str):
    """Build a LocalPipeline with extra environment overrides; closed at teardown."""
    opened: list[LocalPipeline] = []
    base_url = sim.ark_base_url if dialect == "ark" else sim.base_url

    def build(log_stream=None, **overrides: str) -> LocalPipeline:
        settings = {**FAST, "PROVIDER_API": dialect, **overrides}
        pipeline = LocalPipeline(stack, api_base_url=base_url, log_stream=log_stream, **settings)
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
