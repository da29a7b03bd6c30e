"""Figure 10: batch files at scale: the submit function's bulk write, and how fast a backlog drains through MaxInFlight.

10a-10c. A 10,000-row CSV batch (1,000 with --quick) is uploaded to the local stack (moto in its own process, the
jobs table from template.yaml, the real submit handler through LocalPipeline) and the submit invocation that claims
the batch and writes its rows is timed. moto in Python takes far longer per request than DynamoDB, so 10a is split:
the wall-clock seconds on moto (what was measured), this process's CPU seconds (our code with boto3: what the
function itself spends) with moto's own CPU seconds beside them, and the number of DynamoDB requests; from those,
an estimate for the deployed function on real DynamoDB (the assumed latencies and CPU share are named below, as
constants). The target applies to the measured moto run and, separately, to the estimate. Every call the
jobs-table client makes is seen by a botocore hook and counted as write units the simple way: one per item put,
updated or deleted (BatchWriteItem: one per item; TransactWriteItems: two per item), index writes not counted on
either side. Baseline: single uploads of the same
rows (200; 50 with --quick) in the same run, through the same handler, with room in MaxInFlight so each is sent.
Provider calls are those the submit function makes per row: a batch row is sent later by the poller, through the
same admission as a single upload, so its POST is counted there, once, as for a single upload.

10d. Quota: with MaxInFlight Q and tasks of T seconds, a backlog of N jobs cannot finish sooner than N x T / Q.
A batch of N = 200 rows drains on the in-memory fakes with a fake clock (Q = 10, T = 60 s, so the floor is
1,200 s), the poller invoked every scheduled minute and working its window. The figure is the time from the
batch's upload to its last job's end, over the floor. 10d polls only; 10e adds callbacks: each task's callback
is handed off (logic/callback_intake.run_handoff) the moment the task ends, while the poller sleeps.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import MotoServerProcess, Row, external_stack, quiet_pipeline, say

FIG = "10"
SUBMIT_TIMEOUT_SECONDS = 90.0  # SubmitFunction's Timeout in template.yaml
TARGET_SECONDS = 30.0
# The estimate for real DynamoDB (an estimate: not measured against AWS). A BatchWriteItem of 25 small items is
# taken at 30 ms, the top of the 10-30 ms seen in-region (DynamoDB writes each item in single-digit ms, the 25 in
# parallel, plus the HTTPS round trip from Lambda); any other single-item request at 10 ms. Requests in flight
# together (WRITE_CONCURRENCY) count once: the write waits for its slowest wave.
BATCH_WRITE_SECONDS = 0.030
SINGLE_REQUEST_SECONDS = 0.010
# SubmitFunction runs at the Globals' MemorySize of 1024 MB, and Lambda gives the equivalent of one vCPU at 1,769 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html): this process's CPU seconds (on this
# machine's cores, not Graviton's; taken as equal) are divided by that share.
LAMBDA_CPU_SHARE = 1024 / 1769
LABELS = [
    ("10a. submit-function seconds to claim a 10,000-row batch and write its rows, local stack (moto)", "< 30 s"),
    ("10a. of which this process's CPU (our code + boto3) s / DynamoDB requests", "n/a"),
    ("10a. estimated submit seconds on real DynamoDB (assumptions in bench/batch_scale.py)", "< 30 s"),
    ("10b. DynamoDB write units per row in the submit function (batch vs single upload)", "<= single"),
    ("10c. provider calls per row in the submit function (batch vs single upload)", "0"),
    ("10d. drain time of a 200-job backlog over N x T / Q, polling only (fake clock)", "<= 1.15x"),
    ("10e. drain time of a 200-job backlog over N x T / Q, with callbacks (fake clock)", "<= 1.05x"),
]


def _count_writes(client: Any, tally: Counter[str]) -> None:
    def on_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name == "BatchWriteItem":
            tally["units"] += sum(len(v) for v in params.get("RequestItems", {}).values())
        elif name == "TransactWriteItems":
            tally["units"] += 2 * len(params.get("TransactItems", []))
        elif name in ("PutItem", "UpdateItem", "DeleteItem"):
            tally["units"] += 1
        tally[f"call:{name}"] += 1

    client.meta.events.register("provide-client-params.dynamodb.*", on_call)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _estimate_on_dynamodb(jobs: int, client_cpu: float, other_requests: int) -> tuple[float, int]:
    """(estimated seconds, request waves) for the deployed function on DynamoDB: its CPU at Lambda's share, plus
    each wave of BatchWriteItem requests (put_new_jobs sends PROGRESS_EVERY jobs, WRITE_CONCURRENCY requests at a
    time, then records progress) and every other request, one after another. CPU and waits are added, not
    overlapped, so the estimate errs long."""
    from seedance_pipeline.adapters.batch_items import WRITE_BATCH_SIZE, WRITE_CONCURRENCY
    from seedance_pipeline.logic.batch_intake import PROGRESS_EVERY

    waves = 0
    for begin in range(0, jobs, PROGRESS_EVERY):
        requests = math.ceil(min(PROGRESS_EVERY, jobs - begin) / WRITE_BATCH_SIZE)
        waves += math.ceil(requests / WRITE_CONCURRENCY)
    seconds = client_cpu / LAMBDA_CPU_SHARE + waves * BATCH_WRITE_SECONDS + other_requests * SINGLE_REQUEST_SECONDS
    return seconds, waves


def _local_figures(quick: bool) -> list[Row]:
    from seedance_local.harness import LocalPipeline
    from seedance_simulator import Knobs, SimulatorServer
    from tests.support.images import image_bytes

    rows = 1_000 if quick else 10_000
    singles = 50 if quick else 200
    with MotoServerProcess() as moto, SimulatorServer(api_key="sk-bench", knobs=Knobs(api_key="sk-bench")) as sim:
        assert moto.process is not None
        stack = external_stack(moto.endpoint)
        env = {"MAX_IN_FLIGHT": str(singles * 2), "POWERTOOLS_METRICS_DISABLED": "true"}
        with quiet_pipeline(), LocalPipeline(stack, api_base_url=sim.base_url, **env) as pipeline:
            s3 = stack.client("s3")
            s3.put_object(Bucket=stack.bucket, Key="uploads/bench/_img/a.png", Body=image_bytes(800, 450, "PNG"))
            store_client = pipeline.runtime.store._client
            tally: Counter[str] = Counter()
            _count_writes(store_client, tally)

            table = "id,image,prompt,resolution\r\n" + "".join(
                f"r{n},_img/a.png,row {n},480p\r\n" for n in range(1, rows + 1)
            )
            event = pipeline.upload("uploads/bench/rows.csv", table.encode())
            tally.clear()
            # This process's CPU covers every thread in it: the handler, boto3's writer threads, and the simulator's
            # server threads, idle here (the submit function sends no batch row to the provider).
            moto_started = _cpu_seconds(moto.process.pid)
            cpu_started = time.process_time()
            started = time.perf_counter()
            outcome = pipeline.submit(event, timeout_seconds=SUBMIT_TIMEOUT_SECONDS)["outcomes"][0]
            batch_seconds = time.perf_counter() - started
            batch_cpu = time.process_time() - cpu_started
            moto_cpu = _cpu_seconds(moto.process.pid) - moto_started
            batch_units = tally["units"] / rows
            batch_calls = sim.counters.submit / rows
            requests = sum(count for name, count in tally.items() if name.startswith("call:"))
            batch_writes = tally["call:BatchWriteItem"]
            batch_tally = dict(tally)

            events = [
                pipeline.upload(f"uploads/bench/single-{n}.png", image_bytes(800, 450, "PNG"), {"resolution": "480p"})
                for n in range(singles)
            ]
            tally.clear()
            before = sim.counters.submit
            cpu_started = time.process_time()
            started = time.perf_counter()
            for single in events:
                pipeline.submit(single)
            single_seconds = (time.perf_counter() - started) / singles
            # With the simulator's handling of each POST: it serves from threads of this process.
            single_cpu = (time.process_time() - cpu_started) / singles
            single_units = tally["units"] / singles
            single_calls = (sim.counters.submit - before) / singles
            single_requests = sum(count for name, count in tally.items() if name.startswith("call:")) / singles
            single_tally = dict(tally)

    # Said here, not in the pipeline's context: quiet_pipeline keeps its stdout off the report.
    say(FIG, f"batch of {rows}: {outcome['outcome']} in {batch_seconds:.2f} s, {batch_tally}")
    say(FIG, f"  this process's CPU {batch_cpu:.2f} s, moto server's CPU {moto_cpu:.2f} s")
    say(FIG, f"{singles} singles: {single_seconds * 1000:.0f} ms each, {single_tally}")
    per_row = batch_seconds / rows
    estimate, waves = _estimate_on_dynamodb(rows, batch_cpu, requests - batch_writes)
    say(
        FIG,
        f"estimate on DynamoDB: {batch_cpu:.2f} s CPU / {LAMBDA_CPU_SHARE:.2f} vCPU + {waves} BatchWriteItem waves x "
        f"{BATCH_WRITE_SECONDS * 1000:.0f} ms + {requests - batch_writes} other requests x "
        f"{SINGLE_REQUEST_SECONDS * 1000:.0f} ms = {estimate:.1f} s (timeout {SUBMIT_TIMEOUT_SECONDS:.0f} s)",
    )
    met = "met" if batch_seconds < TARGET_SECONDS else "NOT met"
    say(FIG, f"target < {TARGET_SECONDS:.0f} s: {met} on moto ({batch_seconds:.1f} s, moto's CPU {moto_cpu:.1f} s)")
    met = "met" if estimate < TARGET_SECONDS else "NOT met"
    say(FIG, f"target < {TARGET_SECONDS:.0f} s: {met} by the estimate for real DynamoDB ({estimate:.1f} s)")
    return [
        Row(
            LABELS[0][0].replace("10,000", f"{rows:,}"),
            f"{batch_seconds:.2f} s ({per_row * 1000:.2f} ms/row; moto's CPU {moto_cpu:.1f} s)",
            f"{single_seconds * rows:.1f} s as singles ({single_seconds * 1000:.1f} ms each)",
            f"{per_row / single_seconds:.3f}x" if single_seconds else "n/a",
            LABELS[0][1],
            batch_seconds < TARGET_SECONDS,
        ),
        Row(
            LABELS[1][0],
            f"{batch_cpu:.2f} s / {requests} ({batch_writes} BatchWriteItem)",
            f"{single_cpu * rows:.1f} s / {single_requests * rows:,.0f} as singles (CPU incl. the simulator)",
            f"{batch_cpu / (single_cpu * rows):.3f}x" if single_cpu else "n/a",
            LABELS[1][1],
            None,
        ),
        Row(
            LABELS[2][0].replace("10,000", f"{rows:,}"),
            f"~{estimate:.1f} s (estimate; {waves} waves)",
            f"timeout {SUBMIT_TIMEOUT_SECONDS:.0f} s",
            f"{estimate / SUBMIT_TIMEOUT_SECONDS:.2f}x of timeout",
            LABELS[2][1],
            estimate < TARGET_SECONDS,
        ),
        Row(
            LABELS[3][0],
            f"{batch_units:.2f}",
            f"{single_units:.2f}",
            f"{batch_units / single_units:.2f}x" if single_units else "n/a",
            LABELS[3][1],
            batch_units <= single_units,
        ),
        Row(LABELS[4][0], f"{batch_calls:.2f}", f"{single_calls:.2f}", "n/a", LABELS[4][1], batch_calls == 0),
    ]


CALLBACK_SETTINGS: dict[str, Any] = {
    "provider_api": "ark",
    "callback_url": "https://abc.lambda-url.us-east-1.on.aws/",
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
}


def _drain(*, callbacks: bool) -> tuple[float, float]:
    """(drain time, floor) of a 200-row batch on the fakes. With callbacks, each task's callback is handed off the
    moment the task ends (the poller's sleeps are cut at every task end, as the callback function runs meanwhile)."""
    from seedance_pipeline.logic.callback_worker import run_handoff
    from seedance_pipeline.logic.polling import run_poll
    from seedance_pipeline.logic.submission import accept_upload
    from seedance_pipeline.models import Upload
    from seedance_pipeline.triggers.callback_events import CallbackHandoff
    from tests.support.fakes import FakeClock, FakeProvider, make_runtime
    from tests.support.images import image_bytes

    jobs, limit, task_seconds = 200, 10, 60.0
    clock = FakeClock()
    provider = FakeProvider(clock, ready_after=task_seconds)
    settings: dict[str, Any] = CALLBACK_SETTINGS if callbacks else {}
    runtime, store, storage, _ = make_runtime(clock, provider=provider, max_in_flight=limit, **settings)
    storage.add("b", "uploads/_img/a.jpg", image_bytes())
    table = "image,prompt\r\n" + "".join(f"_img/a.jpg,row {n}\r\n" for n in range(jobs))
    storage.add("b", "uploads/drain.csv", table.encode())
    called_back: set[str] = set()

    def deliver_callbacks(until: float) -> None:
        """Every task ending by `until` calls back at its end: the callback function checks and delivers it."""
        while True:
            ends = sorted(
                (task["at"] + task_seconds, task_id)
                for task_id, task in provider.tasks.items()
                if task_id not in called_back and task["at"] + task_seconds <= until
            )
            if not ends:
                return
            at, task_id = ends[0]
            called_back.add(task_id)
            clock.now = max(clock.now, at)
            job = next((j for j in store.jobs() if j.task_id == task_id), None)
            if job is not None:
                run_handoff(CallbackHandoff(job_id=job.job_id), runtime, owner="callback")

    if callbacks:

        def sleep(seconds: float) -> None:
            target = clock.now + seconds
            deliver_callbacks(target)
            clock.now = max(clock.now, target)

        runtime.sleep = sleep
    started = clock()
    accept_upload(Upload(bucket="b", key="uploads/drain.csv", etag="e1", sequencer="01"), runtime, owner="s")
    for _ in range(10_000):
        tick = clock()
        run_poll(runtime, owner="p", time_left=lambda tick=tick: 300.0 - (clock() - tick))  # type: ignore[misc]
        if all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            break
        if callbacks:
            deliver_callbacks(tick + 60.0)
        clock.now = max(clock(), tick + 60.0)
    finished = max(j.finished_at or 0.0 for j in store.jobs())
    return finished - started, jobs * task_seconds / limit


def _drain_figures() -> list[Row]:
    rows = []
    with quiet_pipeline():
        polled, floor = _drain(callbacks=False)
        called, _ = _drain(callbacks=True)
    for label, target, bound, drained in (
        (LABELS[5], 1.15, "polling only", polled),
        (LABELS[6], 1.05, "callbacks", called),
    ):
        say(FIG, f"drained 200 jobs in {drained:.0f} s of fake time ({bound}); floor {floor:.0f} s")
        rows.append(
            Row(
                label[0],
                f"{drained:.0f} s",
                f"{floor:.0f} s",
                f"{drained / floor:.2f}x",
                label[1],
                drained <= floor * target,
            )
        )
    return rows


def run(*, quick: bool = False) -> list[Row]:
    return [*_local_figures(quick), *_drain_figures()]
