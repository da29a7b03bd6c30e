"""Figure 8: one poll invocation delivering 32 videos of 256 MiB at once stays within 60% of the function's memory.

32 real jobs are submitted through the local stack (the submit handler, moto in its own process, the simulator
over HTTP serving lazily generated 256 MiB videos) and left due with their tasks finished. Then one poll invocation
runs in a fresh child process (`python -m bench.poll_memory --child`): the real poll handler with PollFunction's
environment, PollConcurrency 32 and AWS_LAMBDA_FUNCTION_MEMORY_SIZE 1024 as Lambda sets it, which derives how
many deliveries run at once (Settings.delivery_concurrency). The figure is the child's whole peak RSS (VmHWM:
imports, boto3 clients and every transfer buffer, as Lambda's "Max Memory Used" counts it). The child's S3 is a
loopback endpoint that counts and drops media bytes (bench/s3_sink.py): moto would hold 8 GiB of videos.

Baseline: the same invocation without the memory-derived bound (no AWS_LAMBDA_FUNCTION_MEMORY_SIZE: all 32
deliveries at once, each buffering its multipart parts), on 32 more jobs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.common import (
    API_KEY,
    MIB,
    MotoServerProcess,
    Row,
    child_env,
    external_stack,
    patterned_body,
    print_to_parent,
    proc_status_mib,
    quiet_pipeline,
    ratio,
    run_json_child,
    say,
)
from bench.s3_sink import S3Sink

FIG = "8"
FUNCTION_MEMORY_MIB = 1024  # PollFunction's MemorySize (template.yaml Globals)
TARGET_SHARE = 0.6
TARGET_MIB = FUNCTION_MEMORY_MIB * TARGET_SHARE
OUTPUT_BUCKET = "seedance-bench-poll-memory-out"
LABELS = [
    (
        "8a. peak RSS of one poll invocation delivering 32 x 256 MiB videos at once (MiB)",
        f"<= {TARGET_SHARE:.0%} of {FUNCTION_MEMORY_MIB:,} MiB ({TARGET_MIB:.0f})",
    ),
]


def _submit_batch(pipeline: Any, sim: Any, name: str, jobs: int) -> list[str]:
    from tests.support.images import image_bytes

    image = image_bytes(640, 480, "PNG")
    keys = [f"uploads/bench/{name}-{n:02d}.png" for n in range(jobs)]
    for key in keys:
        outcome = pipeline.submit(pipeline.upload(key, image))["outcomes"][0]
        if outcome["outcome"] != "SUBMITTED":
            raise RuntimeError(f"{key} was not submitted: {outcome}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        live = [pipeline.jobs()[key] for key in keys]
        tasks_done = all(sim.task(job.task_id).terminal for job in live)
        if tasks_done and all(job.next_check_at <= time.time() for job in live):
            return keys
        time.sleep(0.2)
    raise RuntimeError(f"the {name} batch's tasks did not finish")


def _poll_in_child(environment: dict[str, str], sink: S3Sink, bounded: bool) -> dict[str, Any]:
    env = child_env(**{**environment, "AWS_ENDPOINT_URL_S3": sink.endpoint})
    env["LOG_LEVEL"] = "WARNING"
    if bounded:
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(FUNCTION_MEMORY_MIB)
    else:
        env.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
    return run_json_child("bench.poll_memory", ["--child"], env=env, what="the poll child", stderr_chars=800)


def _measure(pipeline: Any, sim: Any, sink: S3Sink, name: str, jobs: int, size: int, bounded: bool) -> dict[str, Any]:
    keys = _submit_batch(pipeline, sim, name, jobs)
    result = _poll_in_child(pipeline.environment, sink, bounded)
    succeeded = [key for key in keys if pipeline.jobs()[key].status.value == "SUCCEEDED"]
    videos = sink.sizes(OUTPUT_BUCKET, ".mp4")
    ours = [s for s in videos if s == size]
    if len(succeeded) != jobs:
        raise RuntimeError(f"{name}: {len(succeeded)} of {jobs} jobs SUCCEEDED in one poll ({result['report']})")
    result["line"] = (
        f"{name:9} {jobs} x {size / MIB:.0f} MiB: deliveries at once {result['delivery_concurrency']}, "
        f"peak RSS {result['peak_mib']:.0f} MiB (before the poll {result['rss_before_mib']:.0f}), "
        f"{result['seconds']:.1f} s; {len(ours)} videos of the full size in S3 so far"
    )
    return result


def run(quick: bool) -> list[Row]:
    from seedance_local.harness import LocalPipeline
    from seedance_simulator import Knobs, SimulatorServer

    jobs, size = (4, 16 * MIB) if quick else (32, 256 * MIB)
    knobs = Knobs(api_key=API_KEY, run_seconds=0.0, video_body_factory=patterned_body(size))
    overrides = {
        "CHECK_SCHEDULE_SCALE": "0.01",
        "POLL_CONCURRENCY": str(jobs),
        "MAX_IN_FLIGHT": str(4 * jobs),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    with MotoServerProcess() as moto, S3Sink() as sink, SimulatorServer(api_key=API_KEY, knobs=knobs) as sim:
        stack = external_stack(moto.endpoint, {"OutputBucketName": OUTPUT_BUCKET})
        with quiet_pipeline(), LocalPipeline(stack, api_base_url=sim.base_url, **overrides) as pipeline:
            bounded = _measure(pipeline, sim, sink, "bounded", jobs, size, bounded=True)
            unbounded = _measure(pipeline, sim, sink, "unbounded", jobs, size, bounded=False)
    for result in (bounded, unbounded):
        say(FIG, result["line"])  # after quiet_pipeline, which holds stdout
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{bounded['peak_mib']:.0f} ({bounded['delivery_concurrency']} at once, {jobs} x {size // MIB} MiB)",
            baseline=f"{unbounded['peak_mib']:.0f} (all {unbounded['delivery_concurrency']} at once)",
            ratio=ratio(bounded["peak_mib"], unbounded["peak_mib"]),
            target=LABELS[0][1],
            met=bounded["peak_mib"] <= TARGET_MIB,
        )
    ]


# --- the child: one poll invocation, nothing else ------------------------------------------------------------------


def _child() -> dict[str, Any]:
    from seedance_local.harness import LambdaContext, load_handler, schedule_event

    handler = load_handler("poll")
    from seedance_pipeline.settings import Settings

    concurrency = Settings().delivery_concurrency
    before = proc_status_mib("VmRSS")
    started = time.perf_counter()
    report = handler.lambda_handler(schedule_event(), LambdaContext("PollFunction", 300))
    return {
        "peak_mib": proc_status_mib("VmHWM"),
        "rss_before_mib": before,
        "seconds": time.perf_counter() - started,
        "delivery_concurrency": concurrency,
        "report": report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_memory")
    parser.add_argument("--child", action="store_true", required=True)
    parser.parse_args(argv)
    print_to_parent(_child())
    return 0


if __name__ == "__main__":
    sys.exit(main())
