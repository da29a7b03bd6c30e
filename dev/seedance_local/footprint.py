"""Sizes of the built Lambda artifacts, and the CommonLayer's size budget.

    python -m seedance_local.footprint .aws-sam/build

prints, for each artifact directory that ``sam build`` left in the build directory (CommonLayer, SubmitFunction,
PollFunction), its unzipped size (the sum of its files' sizes, as Lambda counts them against the 250 MB limit) and
its zipped size (deflated as ``sam deploy`` uploads it), and exits 1 when the layer is over its budget of 30 MB
unzipped. MB here is 10**6 bytes, the stricter reading of "30 MB". The functions are importable, for benchmarks::

    from seedance_local.footprint import measure
    sizes = measure(".aws-sam/build")   # list[ArtifactSize], sorted by name
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LAYER_NAME = "CommonLayer"
MB = 1_000_000
LAYER_LIMIT_BYTES = 30 * MB


@dataclass(frozen=True)
class ArtifactSize:
    name: str
    unzipped_bytes: int
    zipped_bytes: int
    files: int

    @property
    def unzipped_mb(self) -> float:
        return self.unzipped_bytes / MB

    @property
    def zipped_mb(self) -> float:
        return self.zipped_bytes / MB


def _files(root: Path) -> list[Path]:
    """Regular files under root (symlinks to files followed, as a zip stores them), in a stable order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(Path(dirpath, name) for name in sorted(filenames) if Path(dirpath, name).is_file())
    return found


def zipped_size(root: Path, files: Sequence[Path] | None = None) -> int:
    """Size in bytes of root's files in a deflated zip, paths relative to root (as sam packages an artifact)."""
    with tempfile.TemporaryFile() as sink:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in _files(root) if files is None else files:
                archive.write(path, path.relative_to(root).as_posix())
        return sink.tell()


def measure_artifact(path: str | os.PathLike[str]) -> ArtifactSize:
    root = Path(path)
    files = _files(root)
    return ArtifactSize(
        name=root.name,
        unzipped_bytes=sum(file.stat().st_size for file in files),
        zipped_bytes=zipped_size(root, files),
        files=len(files),
    )


def measure(build_dir: str | os.PathLike[str]) -> list[ArtifactSize]:
    """Every artifact directory in a ``sam build`` output directory, sorted by name."""
    root = Path(build_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory (run `sam build` first)")
    return [measure_artifact(child) for child in sorted(root.iterdir()) if child.is_dir()]


def layer_over_limit(
    sizes: Sequence[ArtifactSize], limit_bytes: int = LAYER_LIMIT_BYTES, layer: str = LAYER_NAME
) -> str | None:
    """The message to fail with when the layer is over its unzipped budget, else None."""
    for size in sizes:
        if size.name == layer and size.unzipped_bytes > limit_bytes:
            return (
                f"{layer} is {size.unzipped_mb:.2f} MB ({size.unzipped_bytes} bytes) unzipped, over the limit of "
                f"{limit_bytes / MB:g} MB ({limit_bytes} bytes)"
            )
    return None


def human_size(size_bytes: int) -> str:
    """10**6-based units, like the limit: '24.43 MB', '4.9 kB', '512 B'."""
    if size_bytes >= MB:
        return f"{size_bytes / MB:.2f} MB"
    if size_bytes >= 1000:
        return f"{size_bytes / 1000:.1f} kB"
    return f"{size_bytes} B"


def format_table(sizes: Sequence[ArtifactSize]) -> str:
    width = max([len("artifact"), *(len(size.name) for size in sizes)])
    lines = [f"{'artifact':<{width}}  {'unzipped':>10}  {'zipped':>10}  {'files':>6}"]
    lines += [
        f"{size.name:<{width}}  {human_size(size.unzipped_bytes):>10}  {human_size(size.zipped_bytes):>10}  "
        f"{size.files:>6}"
        for size in sizes
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seedance_local.footprint", description="Unzipped and zipped sizes of sam build's artifacts."
    )
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", help="sam build's output directory")
    parser.add_argument(
        "--layer-limit-mb", type=float, default=LAYER_LIMIT_BYTES / MB, help="CommonLayer's unzipped budget (MB)"
    )
    args = parser.parse_args(argv)
    try:
        sizes = measure(args.build_dir)
    except FileNotFoundError as exc:
        print(f"footprint: {exc}", file=sys.stderr)
        return 2
    print(format_table(sizes))
    if not any(size.name == LAYER_NAME for size in sizes):
        print(f"footprint: no {LAYER_NAME} directory in {args.build_dir}", file=sys.stderr)
        return 2
    limit_bytes = round(args.layer_limit_mb * MB)
    problem = layer_over_limit(sizes, limit_bytes)
    if problem:
        print(f"footprint: {problem}", file=sys.stderr)
        return 1
    print(f"{LAYER_NAME} is within its {limit_bytes / MB:g} MB unzipped limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
