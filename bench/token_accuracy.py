"""Figure 7: the pipeline's token estimate against the tokens the (simulated) provider bills, per job.

A few uploads of different sizes, resolutions and ratios run through LocalPipeline (the real handlers, moto from
template.yaml, the simulator over HTTP). Each job records its estimate before the POST (width x height x 24 fps x
frames / 1024 from the provider's output-size table, `adaptive`/`keep_ratio` taking the nearest listed ratio of the
image) and, after success, the provider's `usage`. The row compares the two; a simulator that reports no usage
gives "n/a" (the estimate is then what `seedance-pipeline spend` charges).
"""

from __future__ import annotations

from typing import Any

from bench.common import API_KEY, Row, quiet_pipeline, say

FIG = "7"
LABELS = [("7. estimated vs billed tokens on the simulator (largest error per job)", "<= 5%")]
TARGET_ERROR = 0.05
# (width, height, resolution, ratio, duration) of each upload.
CASES = [
    (640, 480, "480p", "adaptive", 5),
    (1280, 720, "720p", "16:9", 5),
    (720, 1280, "720p", "9:16", 10),
    (1000, 1000, "1080p", "keep_ratio", 5),
    (1600, 1200, "720p", "adaptive", 10),
]


def _run(quick: bool) -> list[dict[str, Any]]:
    from seedance_local.harness import LocalPipeline
    from seedance_local.local_stack import LocalStack
    from seedance_simulator import Knobs, SimulatorServer
    from tests.support.images import image_bytes

    cases = CASES[:3] if quick else CASES
    overrides = {"CHECK_SCHEDULE_SCALE": "0.02", "POLL_WINDOW_SECONDS": "20", "POWERTOOLS_METRICS_DISABLED": "true"}
    with (
        LocalStack.start(api_key=API_KEY) as stack,
        SimulatorServer(api_key=API_KEY, knobs=Knobs(api_key=API_KEY, run_seconds=0.3)) as sim,
        quiet_pipeline(),
        LocalPipeline(stack, api_base_url=sim.base_url, **overrides) as pipeline,
    ):
        for n, (width, height, resolution, ratio, duration) in enumerate(cases):
            metadata = {"resolution": resolution, "ratio": ratio, "duration": str(duration)}
            image = image_bytes(width, height, "PNG")
            pipeline.submit(pipeline.upload(f"uploads/bench/tokens-{n}.png", image, metadata))
        jobs = pipeline.run_until_terminal(timeout=120)
    rows = []
    for (width, height, resolution, ratio, duration), job in zip(cases, jobs.values(), strict=True):
        rows.append(
            {
                "case": f"{width}x{height} {resolution} {ratio} {duration} s",
                "status": job.status.value,
                "estimated": job.estimated_tokens,
                "billed": job.billed_tokens,
            }
        )
    return rows


def run(quick: bool) -> list[Row]:
    results = _run(quick)
    for r in results:
        billed = f"{r['billed']:,}" if r["billed"] is not None else "no usage"
        say(FIG, f"{r['case']}: {r['status']}, estimated {r['estimated']:,}, billed {billed}")
    label, target = LABELS[0]
    estimated = sum(r["estimated"] or 0 for r in results)
    with_usage = [r for r in results if r["billed"] is not None and r["estimated"]]
    if not with_usage:
        unmeasured = f"n/a (the simulator returned no usage; {estimated:,} tokens estimated)"
        return [Row(label, unmeasured, "", "", target, None)]
    errors = [abs(r["estimated"] - r["billed"]) / r["billed"] for r in with_usage if r["billed"]]
    billed = sum(r["billed"] for r in with_usage)
    worst = max(errors) if errors else 0.0
    return [
        Row(
            label,
            f"{worst:.1%} ({len(with_usage)} jobs: {estimated:,} estimated)",
            f"{billed:,} billed",
            f"{estimated / billed:.3f}x" if billed else "n/a",
            target,
            worst <= TARGET_ERROR and len(with_usage) == len(results),
        )
    ]
