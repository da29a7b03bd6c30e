"""`python -m bench [--quick] [--only 1,3]`: run the figures, print one table, write bench/results/latest.md."""

from __future__ import annotations

import sys
from pathlib import Path

# Before anything from the repository is imported: the same roots as pyproject's pytest pythonpath.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import bench  # noqa: E402 - puts functions/*, layers/common, dev and tests on sys.path

bench.ensure_paths()

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

# Lambda-like switches for everything imported in this process: no X-Ray daemon, metrics kept off stdout.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from bench.common import Row  # noqa: E402

# Figure number -> module, in the order they run and appear in the table.
FIGURES = {
    "1": "bench.poll_throughput",
    "2": "bench.check_latency",
    "3": "bench.flat_memory",
    "4": "bench.cold_start",
    "5": "bench.layer_footprint",
    "6": "bench.dynamodb_cost",
    "7": "bench.token_accuracy",
    "8": "bench.poll_memory",
    "9": "bench.callback_latency",
    "10": "bench.batch_scale",
}
COLUMNS = ["figure", "this pipeline", "baseline", "ratio", "target", "met"]
RESULTS = bench.REPO_ROOT / "bench" / "results" / "latest.md"


def table(rows: list[Row]) -> str:
    cells = [COLUMNS] + [[r.figure, r.this, r.baseline, r.ratio, r.target, r.met_text] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (the smoke test); numbers are indicative")
    parser.add_argument("--only", default="", help="comma-separated figure numbers to run (default: all)")
    parser.add_argument(
        "--build-dir",
        default=os.environ.get("BENCH_BUILD_DIR", ".aws-sam/build"),
        help="sam build output for figure 5 (default .aws-sam/build)",
    )
    parser.add_argument("--output", default=str(RESULTS), help="where the Markdown table goes")
    args = parser.parse_args(argv)
    os.environ["BENCH_BUILD_DIR"] = args.build_dir

    selected = [f.strip() for f in args.only.split(",") if f.strip()] or list(FIGURES)
    unknown = [f for f in selected if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")

    # samtranslator (the local stack's template translation) warns about its own unpublished metrics at exit.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    started = time.perf_counter()
    rows: list[Row] = []
    failed = []
    for number in selected:
        module = importlib.import_module(FIGURES[number])
        figure_started = time.perf_counter()
        print(f"\n== figure {number}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        try:
            rows.extend(module.run(quick=args.quick))
        except Exception as exc:
            traceback.print_exc()
            failed.append(number)
            message = f"error: {type(exc).__name__}: {exc}"[:100]
            rows.extend(Row(label, message, "", "", target, False) for label, target in module.LABELS)
        print(f"[{number}] took {time.perf_counter() - figure_started:.1f} s", flush=True)
    elapsed = time.perf_counter() - started

    rendered = table(rows)
    mode = "quick" if args.quick else "full"
    print(f"\n== results ({mode} run, {elapsed:.0f} s)\n{rendered}", flush=True)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Benchmark results\n\n{mode} run of `python -m bench`, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} on {platform.machine()}, {elapsed:.0f} s.\n"
        "Baselines are measured in the same run; see bench/*.py for what each figure measures.\n\n"
    )
    output.write_text(header + rendered + "\n")
    print(f"\nwrote {output}", flush=True)
    if failed:
        print(f"figure(s) {', '.join(failed)} failed; see the tracebacks above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
