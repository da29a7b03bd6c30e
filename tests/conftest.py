"""Suite-wide: a test's folder decides its marker, so `-m integration` / `-m "not integration"` select by kind;
and the Hypothesis profiles: `make test` runs the generated suites at a size that fits its time budget,
`make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs them far longer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No deadline: these machines are shared and noisy; a slow example is not a failure.
settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("fuzz", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)
        # Every Hypothesis test is "generated", so `make fuzz` finds them all without a list.
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False) or _is_state_machine(item):
            item.add_marker(pytest.mark.generated)


def _is_state_machine(item: pytest.Item) -> bool:
    cls = getattr(item, "cls", None)
    return cls is not None and any(base.__name__ == "TestCase" for base in cls.__mro__) and hasattr(cls, "settings")
