"""Figure 5: the unzipped size of CommonLayer (and the functions) as `sam build` leaves them.

Sizes come from seedance_local.footprint.measure (the same numbers `make build` prints) over the build directory
(.aws-sam/build, or --build-dir / $BENCH_BUILD_DIR); without a build the figure reads n/a.

Baseline: a naive layer, `pip install -r requirements.txt boto3` into a folder and nothing pruned: the files
that the layer's distributions plus boto3, botocore, s3transfer, jmespath, python-dateutil and six occupy in the
environment running the benchmark (their installed RECORDs; CPython 3.11 x86_64 here, where the layer is built
for 3.13 arm64, so it is an approximation of the same packages, bytecode included as pip writes it).
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import REPO_ROOT
from bench.common import Row, ratio, say

FIG = "5"
MB = 1_000_000
TARGET_MB = 30.0
LABELS = [("5. CommonLayer size, unzipped (MB)", f"< {TARGET_MB:.0f} MB")]
RUNTIME_PROVIDED = ["boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"]
# Wheels added to the layer for a feature, each with what it costs (unzipped, as built and pruned) in the row:
# the layer stays lean only if every addition is seen. pi-heif: HEIC/HEIF photos (rules/image_normalise.py).
COSTED_WHEELS = ["pi-heif"]


def _build_dir() -> Path:
    path = Path(os.environ.get("BENCH_BUILD_DIR", ".aws-sam/build"))
    return path if path.is_absolute() else REPO_ROOT / path


def _measure(build_dir: Path) -> list[Any]:
    try:
        from seedance_local.footprint import measure
    except ImportError:  # the module is not there: plain directory sizes, no zip sizes
        from dataclasses import dataclass

        @dataclass
        class Size:
            name: str
            unzipped_bytes: int
            zipped_bytes: int
            files: int

        def measure(root: Path) -> list[Any]:  # type: ignore[misc]
            sizes = []
            for child in sorted(Path(root).iterdir()):
                if child.is_dir():
                    files = [p for p in child.rglob("*") if p.is_file()]
                    sizes.append(Size(child.name, sum(p.stat().st_size for p in files), 0, len(files)))
            return sizes

    return list(measure(build_dir))


def wheel_sizes(site: Path) -> dict[str, int]:
    """Bytes each distribution occupies in a built layer's python/ folder, from its own RECORD (files the build
    pruned are not counted), keyed by canonical name ("pi-heif")."""
    sizes: dict[str, int] = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        name = re.sub(r"[-_.]+", "-", record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]).lower()
        total = 0
        for line in record.read_text().splitlines():
            relative = line.split(",", 1)[0]
            path = site / relative
            if relative and path.is_file():
                total += path.stat().st_size
        sizes[name] = total
    return sizes


def _naive_layer_bytes() -> tuple[int, list[str]]:
    """Installed size of the layer's requirements plus what the Lambda runtime already provides."""
    names = []
    for line in (REPO_ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*==", line.strip())
        if match:
            names.append(match[1])
    total, missing = 0, []
    for name in [*names, *RUNTIME_PROVIDED]:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and ".dist-info" not in str(file):
                total += path.stat().st_size
    return total, missing


def run(quick: bool) -> list[Row]:
    naive, missing = _naive_layer_bytes()
    say(
        FIG,
        f"naive layer (requirements + boto3 stack, unpruned, as installed here): {naive / MB:.1f} MB"
        + (f"; not installed here, left out: {', '.join(missing)}" if missing else ""),
    )
    build_dir = _build_dir()
    if not build_dir.is_dir():
        say(FIG, f"no build at {build_dir}: run `make build` (or pass --build-dir)")
        return [
            Row(
                LABELS[0][0],
                f"n/a (no {build_dir.name}; run make build)",
                f"{naive / MB:.1f} (naive)",
                "n/a",
                LABELS[0][1],
                None,
            )
        ]
    sizes = _measure(build_dir)
    for size in sizes:
        zipped = f", {size.zipped_bytes / MB:.2f} MB zipped" if size.zipped_bytes else ""
        say(FIG, f"{size.name}: {size.unzipped_bytes / MB:.2f} MB unzipped{zipped}, {size.files} files")
    layer = next((s for s in sizes if s.name == "CommonLayer"), None)
    if layer is None:
        raise RuntimeError(f"no CommonLayer directory in {build_dir}")
    unzipped = layer.unzipped_bytes / MB
    zipped = f", {layer.zipped_bytes / MB:.1f} zipped" if layer.zipped_bytes else ""
    wheels = wheel_sizes(build_dir / "CommonLayer" / "python")
    costs = [f"{name} {wheels[name] / MB:.1f}" for name in COSTED_WHEELS if name in wheels]
    for name in COSTED_WHEELS:
        say(FIG, f"{name}: " + (f"{wheels[name] / MB:.2f} MB of the layer" if name in wheels else "not in this build"))
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{unzipped:.1f}{zipped}" + (f" (of which {', '.join(costs)})" if costs else ""),
            baseline=f"{naive / MB:.1f} (naive: unpruned, with boto3)",
            ratio=ratio(layer.unzipped_bytes, naive),
            target=LABELS[0][1],
            met=unzipped < TARGET_MB,
        )
    ]
