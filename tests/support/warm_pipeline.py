"""One moto stack and one warm LocalPipeline for a whole test module, as in a warm Lambda container.

For integration modules whose tests each use their own keys (starting a stack takes seconds). Importing both
fixtures overrides conftest's per-test `stack` and `pipeline` in that module (the functions have other names than
the fixtures, so a test's `stack` and `pipeline` arguments do not shadow the imports):

    from tests.support.warm_pipeline import module_wide_stack, warm_pipeline  # noqa: F401 - fixtures
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from seedance_local.harness import LocalPipeline
from seedance_local.local_stack import LocalStack
from seedance_simulator import SimulatorServer
from tests.support.stack_settings import FAST


@pytest.fixture(scope="module", name="stack")
def module_wide_stack(module_stack: LocalStack) -> LocalStack:
    return module_stack


@pytest.fixture(scope="module", name="pipeline")
def warm_pipeline(stack: LocalStack, simulator: SimulatorServer) -> Iterator[LocalPipeline]:
    local = LocalPipeline(stack, api_base_url=simulator.base_url, **FAST)
    local.__enter__()
    try:
        yield local
    finally:
        local.__exit__(None, None, None)
