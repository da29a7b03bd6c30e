"""Figure 9: provider done -> MP4 in S3, and status calls per job, with provider callbacks vs polling alone.

Both halves run in one run on the real handlers, one after the other, on a local stack deployed with
CallbackMode=on (moto over HTTP, resources from template.yaml) and the simulator over real HTTP. With callbacks the
simulator POSTs each status change to the local Function URL; the callback function hands the job to itself
through the local Invoke API, confirms with one status call and delivers. The polling half gets the environment
CallbackMode=off gives (no callback URL), so only the poller finds finished tasks. In both the poller is invoked on
the schedule's own timing (every 60 s, CHECK_SCHEDULE_SCALE=1); --quick scales both by 1/20 and runs two jobs,
so its numbers are only indicative.

"Provider done" is the moment the simulator recorded for the task's end; "MP4 in S3" is when the video object
appeared, seen by a watcher that lists the output prefix every 20 ms.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.common import API_KEY, SCHEDULE_SECONDS, Row, quiet_pipeline, say

FIG = "9"
LABELS = [
    ("9a. provider done -> MP4 in S3 with callbacks (p50 / p95 s)", "p50 <= 3 s + transfer"),
    ("9b. status calls per job with callbacks (mean)", "<= 1.5"),
]
TARGET_SECONDS = 3.0
TARGET_CALLS = 1.5
CALLBACKS = {"CallbackMode": "on", "CallbackField": "callback_url"}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class ArrivalWatcher:
    """Lists the output prefix every 20 ms and notes when each MP4 first appears: when a reader could fetch it."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-arrivals", daemon=True)

    def _sweep(self) -> None:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        seen = time.time()
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"].endswith(".mp4"):
                    self.arrived.setdefault(item["Key"], seen)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._sweep()
            time.sleep(0.02)

    def __enter__(self) -> ArrivalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sweep()


def _run_half(stack: Any, sim: Any, *, callbacks: bool, jobs: int, scale: float) -> dict[str, Any]:
    from seedance_local.harness import LocalPipeline
    from tests.support.images import image_bytes

    settings = {"CHECK_SCHEDULE_SCALE": str(scale), "POWERTOOLS_METRICS_DISABLED": "true"}
    if not callbacks:
        # What CallbackMode=off gives the functions (the template's !If ... ""): no callback URL is sent.
        settings.update(CALLBACK_URL="", CALLBACK_SIGNING_SECRET_ID="")
    half = "callbacks" if callbacks else "polling"
    run_seconds = sim.knobs.run_seconds
    sim.counters.reset()
    with LocalPipeline(stack, api_base_url=sim.base_url, **settings) as pipeline:
        image = image_bytes(320, 320, "PNG")
        for index in range(jobs):
            pipeline.submit(pipeline.upload(f"uploads/bench/{half}-{index:03d}.png", image, {"resolution": "480p"}))
        queries_after_submit = sim.counters.query
        started = time.monotonic()
        period = SCHEDULE_SECONDS * scale
        tick = started
        watcher = ArrivalWatcher(stack.client("s3"), stack.output_bucket, pipeline.runtime.settings.output_prefix)
        with watcher:
            while not all(j is not None and j.status.is_terminal for j in pipeline.jobs().values()):
                if time.monotonic() - started > 40 * period + 60 * run_seconds:
                    raise TimeoutError("jobs still live after the benchmark's wait")
                if time.monotonic() >= tick:  # the schedule's next tick: one poll run, as EventBridge makes it
                    pipeline.poll(timeout_seconds=300)
                    tick += period
                time.sleep(0.02)
            pipeline.wait_idle(60)
        delays, arrivals = [], []
        for job in pipeline.jobs().values():
            if job is None or job.outputs is None or job.task_id is None:
                raise RuntimeError(f"a benchmark job did not succeed: {job}")
            task = sim.simulator.get(job.task_id)
            if task is None or task.finished_at is None:
                raise RuntimeError("the simulator has no terminal time for a finished job's task")
            # finished_at is the exact moment the task ended, replayed; terminal_at (the wall clock when the
            # simulator noticed) trails it by a ticker tick with callbacks, and by up to a poll without.
            done_at = task.finished_at
            delays.append(watcher.arrived[job.outputs.video_key] - done_at)
            arrivals.append(pipeline.arrival(job))
        return {
            "delays": delays,
            "calls": (sim.counters.query - queries_after_submit) / jobs,
            "arrivals": arrivals,
            "polls": len(pipeline.poll_runs),
        }


def run(quick: bool) -> list[Row]:
    from seedance_local.local_stack import LocalStack
    from seedance_simulator import Knobs, SimulatorServer

    jobs, scale, run_seconds = (2, 0.05, 1.0) if quick else (12, 1.0, 20.0)
    knobs = Knobs(api_key=API_KEY, run_seconds=run_seconds, queue_seconds=0)
    # One stack deployed with CallbackMode=on serves both halves; the polling half gets the environment
    # CallbackMode=off would give.
    with (
        quiet_pipeline(),
        SimulatorServer(api_key=API_KEY, knobs=knobs) as sim,
        LocalStack.start(api_key=API_KEY, parameters=CALLBACKS) as stack,
    ):
        with_callbacks = _run_half(stack, sim, callbacks=True, jobs=jobs, scale=scale)
        polling = _run_half(stack, sim, callbacks=False, jobs=jobs, scale=scale)
    results = {"callbacks": with_callbacks, "polling only": polling}
    for name, half in results.items():
        by = {how: half["arrivals"].count(how) for how in sorted(set(half["arrivals"]))}
        say(
            FIG,
            f"{name}: {jobs} jobs of {run_seconds:.0f} s, polled every {SCHEDULE_SECONDS * scale:.0f} s "
            f"({half['polls']} runs); done->MP4 p50 {_percentile(half['delays'], 0.5):.2f} s, "
            f"p95 {_percentile(half['delays'], 0.95):.2f} s; status calls/job {half['calls']:.2f}; arrived by {by}",
        )
    p50, p95 = (_percentile(with_callbacks["delays"], q) for q in (0.5, 0.95))
    base50, base95 = (_percentile(polling["delays"], q) for q in (0.5, 0.95))
    all_by_callback = all(how == "callback" for how in with_callbacks["arrivals"])
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{p50:.2f} / {p95:.2f} ({jobs} jobs)",
            baseline=f"{base50:.2f} / {base95:.2f} (polling only)",
            ratio=f"{p50 / base50:.2f}x" if base50 > 0 else "n/a",
            target=LABELS[0][1],
            met=all_by_callback and p50 <= TARGET_SECONDS,
        ),
        Row(
            figure=LABELS[1][0],
            this=f"{with_callbacks['calls']:.2f}",
            baseline=f"{polling['calls']:.2f} (polling only)",
            ratio=f"{with_callbacks['calls'] / polling['calls']:.2f}x" if polling["calls"] else "n/a",
            target=LABELS[1][1],
            met=with_callbacks["calls"] <= TARGET_CALLS,
        ),
    ]
