"""Benchmarks of the pipeline against baselines measured in the same run (`make bench`, `python -m bench`).

One module per figure; each exposes ``run(quick: bool) -> list[Row]``. Nothing here asserts on timings: the
numbers are printed beside their baselines and targets, and written to ``bench/results/latest.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The same roots as [tool.pytest.ini_options].pythonpath in pyproject.toml: handlers beside their CodeUri,
# the layer package and the dev packages (simulator, local stack); the root itself holds tests.support.
SOURCE_ROOTS = ["functions/submit", "functions/poll", "layers/common", "dev"]


def ensure_paths() -> list[str]:
    """Put the repository's source roots on sys.path (idempotent); returns them, for child processes."""
    roots = [str(REPO_ROOT / root) for root in SOURCE_ROOTS]
    for root in reversed([str(REPO_ROOT), *roots]):
        if root not in sys.path:
            sys.path.insert(0, root)
    return [str(REPO_ROOT), *roots]


ensure_paths()
