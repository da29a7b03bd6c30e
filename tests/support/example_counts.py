"""How many examples a generated test runs. A test may run fewer than make test's profile (an example that decodes a
19 MP photo) or more (a cheap bound worth more cases) within make test's time budget, but never caps make fuzz: under
the fuzz profile every generated test runs the profile's own count."""

from __future__ import annotations

from hypothesis import settings

# make test's profile runs 100 examples, make fuzz's 5,000 (tests/conftest.py): a profile of this size or more is a
# long run that a test's own count must not shorten.
LONG_RUN_EXAMPLES = 1000


def examples(make_test_examples: int) -> int:
    """`make_test_examples` under make test's profile, the profile's own count under make fuzz."""
    profile = settings().max_examples
    return profile if profile >= LONG_RUN_EXAMPLES else make_test_examples
