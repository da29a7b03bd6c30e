"""Figure 2: status calls per job, and the delay from "provider done" to "MP4 in S3", on simulated time.

Jobs finish 40-120 s (uniform) after submission, uploads arrive at random over two hours. Real time would take
an hour, so the real submission and poll logic run against the in-memory fakes of tests/support/fakes.py
(FakeClock, FakeStore, FakeStorage, FakeProvider via make_runtime) with a fake clock: the poll function is
invoked every 60 s (the EventBridge schedule) with a 300 s Lambda deadline, and run_poll's own loop serves the
jobs that fall due within its window, sleeping by advancing the fake clock. Uploads that arrive while it
sleeps are submitted at their own time (the submit function runs concurrently in Lambda).

Baseline: a naive poller that asks about every live job once a minute, for the same uploads and durations.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, deque
from typing import Any

from bench.common import SCHEDULE_SECONDS, Row, quiet_pipeline, ratio, say

FIG = "2"
LABELS = [
    ("2a. provider done -> MP4 in S3, tasks taking 40-120 s (median s)", "<= 15 s"),
    ("2b. status calls per job, same jobs (mean)", "<= 6"),
]
TARGET_SECONDS = 15.0
TARGET_CALLS = 6.0
LAMBDA_TIMEOUT = 300.0  # PollFunction's Timeout in template.yaml
BUCKET = "in-bucket"
RUN_SECONDS = (40.0, 120.0)


def _simulate_pipeline(jobs: int, span_seconds: float, seed: int) -> dict[str, Any]:
    from seedance_pipeline.logic.polling import run_poll
    from seedance_pipeline.logic.submission import accept_upload
    from seedance_pipeline.models import JobStatus, ProviderState, TaskResult, Upload
    from seedance_pipeline.ports import Readable
    from tests.support.fakes import FakeClock, FakeProvider, FakeStorage, make_runtime
    from tests.support.images import image_bytes

    rng = random.Random(seed)
    start = 1_800_000_000.0  # a whole minute: the schedule ticks at start + k * 60
    arrivals = sorted(start + rng.uniform(0, span_seconds) for _ in range(jobs))
    durations = iter([rng.uniform(*RUN_SECONDS) for _ in range(jobs)])

    class RandomDurationProvider(FakeProvider):
        """Each task is done a U(40, 120) s draw after its submission; every status call is counted."""

        def __init__(self, clock: FakeClock) -> None:
            super().__init__(clock)
            self.calls: Counter[str] = Counter()

        def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str:
            task_id: str = super().submit(body, deadline=deadline)
            with self._lock:
                self.tasks[task_id]["done_at"] = self.tasks[task_id]["at"] + next(durations)
            return task_id

        def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
            with self._lock:
                self.calls[task_id] += 1
                self.gets += 1
            if self.clock() < self.tasks[task_id]["done_at"]:
                return TaskResult(task_id=task_id, state=ProviderState.RUNNING, raw_status="IN_PROGRESS")
            return TaskResult(
                task_id=task_id,
                state=ProviderState.SUCCEEDED,
                raw_status="SUCCESS",
                video_url=f"https://cdn.example.com/{task_id}.mp4",
            )

    stored_at: dict[str, float] = {}

    class TimedStorage(FakeStorage):
        """Notes the simulated time each MP4 lands, for the provider done -> MP4 delay."""

        def upload_stream(self, stream: Readable, bucket: str, key: str, *, content_type: str) -> None:
            super().upload_stream(stream, bucket, key, content_type=content_type)
            if key.endswith(".mp4"):
                stored_at[key] = clock()

    clock = FakeClock(start)
    provider = RandomDurationProvider(clock)
    runtime, store, storage, _ = make_runtime(
        clock, provider=provider, storage=TimedStorage(), max_in_flight=5000, due_index_shards=4
    )
    image = image_bytes()
    pending = deque(enumerate(arrivals))

    def admit_until(moment: float) -> None:
        """Run the submit function for every upload that has arrived by `moment`, each at its own time."""
        while pending and pending[0][1] <= moment:
            index, at = pending.popleft()
            clock.now = max(clock.now, at)
            key = f"uploads/bench/{index:04d}.jpg"
            storage.add(BUCKET, key, image)
            upload = Upload(bucket=BUCKET, key=key, sequencer=f"{index:016X}", etag="e1", size=len(image))
            accept_upload(upload, runtime, owner="submit")

    def sleep(seconds: float) -> None:
        target = clock.now + seconds
        admit_until(target)
        clock.now = max(clock.now, target)

    runtime.sleep = sleep
    live = {s.value for s in JobStatus if not s.is_terminal}
    tick, invocations = start, 0
    while pending or any(item["job"]["status"] in live for item in store.items.values()):
        admit_until(tick)
        clock.now = max(clock.now, tick)
        deadline = tick + LAMBDA_TIMEOUT

        def time_left(deadline: float = deadline) -> float:
            return deadline - clock()

        run_poll(runtime, owner=f"poll-{invocations}", time_left=time_left)
        invocations += 1
        tick += SCHEDULE_SECONDS
        if invocations > 10 * (span_seconds / SCHEDULE_SECONDS + 200):
            raise RuntimeError("the simulated poller did not finish the jobs")

    delays, calls, tasks = [], [], []
    statuses: Counter[str] = Counter()
    for job in store.jobs():
        statuses[job.status.value] += 1
        assert job.task_id is not None, f"job {job.job_id} was never submitted"
        task = provider.tasks[job.task_id]
        tasks.append((task["at"], task["done_at"]))
        calls.append(provider.calls[job.task_id])
        if job.status is JobStatus.SUCCEEDED and job.outputs is not None:
            delays.append(stored_at[job.outputs.video_key] - task["done_at"])
    return {
        "delays": delays,
        "calls": calls,
        "tasks": tasks,
        "statuses": dict(statuses),
        "invocations": invocations,
        "start": start,
    }


def _simulate_naive(tasks: list[tuple[float, float]], start: float) -> dict[str, Any]:
    """Every minute, one status call per live job; a job is delivered at the first tick after it is done."""
    delays, calls = [], []
    for submitted, done in tasks:
        first = start + math.ceil((submitted - start) / SCHEDULE_SECONDS) * SCHEDULE_SECONDS
        ticks_until_done = max(0, math.ceil((done - first) / SCHEDULE_SECONDS))
        calls.append(ticks_until_done + 1)
        delays.append(first + ticks_until_done * SCHEDULE_SECONDS - done)
    return {"delays": delays, "calls": calls}


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def run(quick: bool) -> list[Row]:
    jobs, span = (40, 600.0) if quick else (1000, 7200.0)
    with quiet_pipeline():
        pipeline = _simulate_pipeline(jobs, span, seed=20250831)
    naive = _simulate_naive(pipeline["tasks"], pipeline["start"])

    median, naive_median = statistics.median(pipeline["delays"]), statistics.median(naive["delays"])
    mean_calls, naive_calls = statistics.mean(pipeline["calls"]), statistics.mean(naive["calls"])
    say(
        FIG,
        f"{jobs} uploads over {span / 60:.0f} simulated minutes, {pipeline['invocations']} poll invocations; "
        f"outcomes {pipeline['statuses']}",
    )
    say(
        FIG,
        f"pipeline: done->MP4 median {median:.1f} s, p90 {_p90(pipeline['delays']):.1f} s, "
        f"max {max(pipeline['delays']):.1f} s; status calls mean {mean_calls:.2f}, max {max(pipeline['calls'])}",
    )
    say(
        FIG,
        f"naive once-a-minute poller: done->MP4 median {naive_median:.1f} s, p90 {_p90(naive['delays']):.1f} s; "
        f"status calls mean {naive_calls:.2f}, max {max(naive['calls'])}",
    )
    complete = pipeline["statuses"].get("SUCCEEDED", 0) == jobs
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{median:.1f} (p90 {_p90(pipeline['delays']):.1f}; {jobs} jobs)",
            baseline=f"{naive_median:.1f} (naive, every live job once a minute)",
            ratio=ratio(median, naive_median),
            target=LABELS[0][1],
            met=complete and median <= TARGET_SECONDS,
        ),
        Row(
            figure=LABELS[1][0],
            this=f"{mean_calls:.2f}",
            baseline=f"{naive_calls:.2f} (naive)",
            ratio=ratio(mean_calls, naive_calls),
            target=LABELS[1][1],
            met=complete and mean_calls <= TARGET_CALLS,
        ),
    ]
