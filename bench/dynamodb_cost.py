"""Figure 6: DynamoDB read and write capacity per job, from upload to SUCCEEDED, and no Scan on the hot path.

A handful of real jobs run through LocalPipeline (the real handlers; moto in its own process; the simulator
over HTTP) on a compressed clock: CHECK_SCHEDULE_SCALE=0.05, so the simulator's 2-6 s tasks stand for 40-120 s
ones, the poll window is 2.5 s and the poller is invoked every 3 s (the scheduled minute, scaled the same way).
Every call the pipeline's jobs-table client makes is seen by botocore event hooks (operation, parameters,
answer). moto's ConsumedCapacity is a constant (1.0 per PutItem, none for
UpdateItem), so the capacity is computed from item sizes with DynamoDB's on-demand rules: writes round each item
up to 1 KB, and the due-jobs index (ALL projection) costs a write when an item enters, changes in or leaves it,
two when its keys change; by-task-id (KEYS_ONLY) only when task_id changes; strongly consistent reads round up
to 4 KB, index queries are eventually consistent (half) over the summed size of what they read.

Baseline: a naive poller that Scans the whole table every minute for live jobs: the same jobs and the same
number of poll minutes, each Scan costing the table's size at that minute (eventually consistent).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from bench.common import API_KEY, MotoServerProcess, Row, external_stack, quiet_pipeline, ratio, say

FIG = "6"
SCALE = 0.05
TICK_SECONDS = 60 * SCALE
LABELS = [
    ("6a. DynamoDB read capacity per job, upload -> SUCCEEDED (RCU)", "none"),
    ("6b. DynamoDB write capacity per job, upload -> SUCCEEDED (WCU)", "none"),
    ("6c. Scan calls on the hot path (submit + poll)", "0"),
]


# --- DynamoDB item size and capacity rules ----------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(_number_size(v) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def _wcu(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _in_due_index(item: dict[str, Any] | None) -> bool:
    return bool(item) and "due_shard" in item and "next_check_at" in item  # type: ignore[operator]


def _index_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    writes = 0.0
    before, after = _in_due_index(old), _in_due_index(new)
    if before and after:
        keys_changed = any(old.get(k) != new.get(k) for k in ("due_shard", "next_check_at"))  # type: ignore[union-attr]
        writes += (_wcu(item_size(old)) + _wcu(item_size(new))) if keys_changed else _wcu(item_size(new))
    elif before:
        writes += _wcu(item_size(old))
    elif after:
        writes += _wcu(item_size(new))
    old_task = (old or {}).get("task_id")
    new_task = (new or {}).get("task_id")
    if old_task != new_task:
        writes += (1 if old_task else 0) + (1 if new_task else 0)
    return writes


class CapacityMeter:
    """Watches one DynamoDB client and prices every call it makes from the items involved."""

    def __init__(self, client: Any, reader: Any, table: str) -> None:
        self.reader = reader  # an unwatched client, to read an item's new image when a call does not return it
        self.table = table
        self.items: dict[str, dict[str, Any]] = {}  # the table as this client has written it
        self.rcu: defaultdict[str, float] = defaultdict(float)
        self.wcu: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("bench_params", {})
        operation = model.name
        failed = "Error" in parsed and parsed["Error"].get("Code")
        new_image = None
        if operation == "UpdateItem" and not failed and "Attributes" not in parsed:
            new_image = self.reader.get_item(TableName=self.table, Key=params["Key"], ConsistentRead=True).get("Item")
        with self._lock:
            self.calls[operation] += 1
            if operation == "Query":
                self.calls["Query: earliest due" if "ProjectionExpression" in params else "Query: due jobs"] += 1
            if operation == "PutItem":
                key = params["Item"]["job_id"]["S"]
                self._write(operation, key, params["Item"], bool(failed))
            elif operation == "UpdateItem":
                key = params["Key"]["job_id"]["S"]
                self._write(operation, key, parsed.get("Attributes") or new_image, bool(failed))
            elif operation == "GetItem":
                size = item_size(parsed.get("Item"))
                factor = 1.0 if params.get("ConsistentRead") else 0.5
                self.rcu[operation] += factor * max(1, math.ceil(size / 4096))
            elif operation in ("Query", "Scan"):
                items = parsed.get("Items", [])
                if "ProjectionExpression" in params:  # billed on the whole items read, not the projection
                    size = len(items) * max((item_size(i) for i in self.items.values()), default=0)
                else:
                    size = sum(item_size(i) for i in items)
                self.rcu[operation] += 0.5 * max(1, math.ceil(size / 4096))

    def _write(self, operation: str, key: str, new: dict[str, Any] | None, failed: bool) -> None:
        old = self.items.get(key)
        if failed or new is None:  # a refused conditional write still costs the item's size
            self.wcu[operation + " (condition failed)"] += _wcu(item_size(old))
            return
        self.wcu[operation] += _wcu(max(item_size(old), item_size(new)))
        self.wcu["index writes"] += _index_writes(old, new)
        self.items[key] = new

    def table_bytes(self) -> int:
        with self._lock:
            return sum(item_size(i) for i in self.items.values())


def _scan_rcu(table_bytes: int) -> float:
    return 0.5 * max(1, math.ceil(table_bytes / 4096))


def _small_body(task: Any) -> tuple[int, Any]:
    return 64 * 1024, iter([b"\x00" * 64 * 1024])


def run(quick: bool) -> list[Row]:
    from seedance_local.harness import LocalPipeline
    from seedance_simulator import Knobs, SimulatorServer
    from tests.support.images import image_bytes

    jobs = 3 if quick else 8
    rng = random.Random(6)
    overrides = {
        "CHECK_SCHEDULE_SCALE": str(SCALE),
        "POLL_WINDOW_SECONDS": str(50 * SCALE),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    knobs = Knobs(api_key=API_KEY, video_body_factory=_small_body)
    with MotoServerProcess() as moto, SimulatorServer(api_key=API_KEY, knobs=knobs) as sim:
        stack = external_stack(moto.endpoint)
        reader = stack.client("dynamodb")
        with quiet_pipeline(), LocalPipeline(stack, api_base_url=sim.base_url, **overrides) as pipeline:
            meter = CapacityMeter(pipeline.runtime.store._client, reader, stack.table_name)
            durations = [rng.uniform(40, 120) for _ in range(jobs)]
            for index, duration in enumerate(durations):
                sim.knobs.run_seconds = duration * SCALE  # captured per task at submission
                pipeline.submit(pipeline.upload(f"uploads/bench/cost-{index}.png", image_bytes(640, 480, "PNG")))
            job_ids = list(pipeline.job_ids.values())
            naive_rcu, invocations = 0.0, 0
            deadline = time.monotonic() + 120
            tick = time.monotonic()
            while True:
                statuses = [
                    reader.get_item(TableName=stack.table_name, Key={"job_id": {"S": j}})["Item"]["status"]["S"]
                    for j in job_ids
                ]
                if all(s in ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT") for s in statuses):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jobs still live after 120 s: {statuses}")
                naive_rcu += _scan_rcu(meter.table_bytes())  # the naive poller's Scan at this minute
                pipeline.poll(timeout_seconds=300)
                invocations += 1
                tick += TICK_SECONDS
                time.sleep(max(0.0, tick - time.monotonic()))
        stack.stop()

    succeeded = statuses.count("SUCCEEDED")
    rcu, wcu = sum(meter.rcu.values()), sum(meter.wcu.values())
    job_items = [i for k, i in meter.items.items() if not k.startswith("#")]  # not the slot/bookkeeping items
    mean_item = sum(item_size(i) for i in job_items) / max(1, len(job_items))
    # A naive design writes a job three times (created, submitted, finished), with no index to maintain.
    naive_wcu = 3 * _wcu(int(mean_item))
    say(
        FIG,
        f"{jobs} jobs taking {', '.join(f'{d:.0f}' for d in durations)} s (scaled x{SCALE}), {succeeded} SUCCEEDED, "
        f"{invocations} poll invocations (= scheduled minutes)",
    )
    say(FIG, f"calls by operation: {dict(meter.calls)}")
    say(FIG, "RCU by operation: " + ", ".join(f"{k} {v:.1f}" for k, v in meter.rcu.items()))
    say(FIG, "WCU by operation: " + ", ".join(f"{k} {v:.0f}" for k, v in meter.wcu.items()))
    retained_scan = 1440 * 30 * mean_item / 8192  # per job per day: 1440 Scans of a 30-day table, eventually consistent
    say(
        FIG,
        f"mean job item {mean_item:.0f} B; at steady state with the 30-day retention a once-a-minute Scan costs "
        f"~{retained_scan:,.0f} RCU per job whatever the traffic (1440 Scans/day over 30 days of jobs)",
    )
    scans = meter.calls.get("Scan", 0)
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{rcu / jobs:.1f} ({jobs} jobs together)",
            baseline=f"{naive_rcu / jobs:.1f} (Scan a minute, same {invocations} min); ~{retained_scan:,.0f} at 30-day "
            "retention",
            ratio=ratio(rcu, naive_rcu),
            target=LABELS[0][1],
            met=None,
        ),
        Row(
            figure=LABELS[1][0],
            this=f"{wcu / jobs:.1f}",
            baseline=f"{naive_wcu:.1f} (3 writes of the same item, no index)",
            ratio=ratio(wcu / jobs, naive_wcu),
            target=LABELS[1][1],
            met=None,
        ),
        Row(
            figure=LABELS[2][0],
            this=str(scans),
            baseline=f"{invocations} (one per poll minute)",
            ratio="n/a",
            target=LABELS[2][1],
            met=scans == 0 and succeeded == jobs,
        ),
    ]
