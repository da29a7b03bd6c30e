"""`python -m bench --quick` runs every figure and reports them; the numbers themselves are not checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURE_ROWS = [
    "1a.",
    "1b.",
    "2a.",
    "2b.",
    "3a.",
    "3b.",
    "4a.",
    "4b.",
    "5.",
    "6a.",
    "6b.",
    "6c.",
    "6d.",
    "8a.",
    "9a.",
    "9b.",
    "10a.",
    "10b.",
    "10c.",
    "10d.",
    "10e.",
]
COLUMNS = ["figure", "this pipeline", "baseline", "ratio", "target", "met"]


def table_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


@pytest.mark.timeout(900)
def test_the_quick_benchmark_prints_every_figure_and_writes_the_markdown_table(tmp_path):
    output = tmp_path / "latest.md"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # bench/__main__.py sets up its own path
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    printed = table_rows(done.stdout.split("== results", 1)[1])
    assert printed[0] == COLUMNS
    labels = [row[0] for row in printed[2:]]
    for figure in FIGURE_ROWS:
        assert any(label.startswith(figure) for label in labels), f"no row for figure {figure} in {labels}"
    assert all(len(row) == len(COLUMNS) for row in printed)

    written = output.read_text()
    assert table_rows(written)[0] == COLUMNS
    for figure in FIGURE_ROWS:
        assert f"| {figure}" in written
