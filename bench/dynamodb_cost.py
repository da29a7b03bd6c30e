"""Figure 6: DynamoDB read and write capacity per job, from upload to SUCCEEDED, and no Scan on the hot path.

The same handful of real jobs runs at MaxInFlight 10, 100 and 1,000, with other jobs holding about half the
slots at 100 and 1,000 (taken through JobStore before the run, not counted), so admission meets busy slots as it
would at that scale. Then the largest item of the table is measured with 20, 200 and 1,000 jobs in flight.

A handful of real jobs run through LocalPipeline (the real handlers; moto in its own process; the simulator
over HTTP) on a compressed clock: CHECK_SCHEDULE_SCALE=0.05, so the simulator's 2-6 s tasks stand for 40-120 s
ones, the poll window is 2.5 s and the poller is invoked every 3 s (the scheduled minute, scaled the same way).
Every call the pipeline's jobs-table client makes is seen by botocore event hooks (operation, parameters,
answer). moto's ConsumedCapacity is a constant (1.0 per PutItem, none for
UpdateItem), so the capacity is computed from item sizes with DynamoDB's on-demand rules: writes round each item
up to 1 KB (a refused conditional write still costs one), and an index costs a write of its entry when an item
enters it, leaves it or changes a projected attribute, two when its keys change: due-jobs projects the keys and
DUE_INDEX_ATTRIBUTES, slot-holders only keys; strongly consistent reads round up to 4 KB, index
queries are eventually consistent (half) over the summed size of the index entries they read.

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
from seedance_pipeline.models import DUE_INDEX_ATTRIBUTES

FIG = "6"
SCALE = 0.05
TICK_SECONDS = 60 * SCALE
LIMITS = (10, 100, 1000)
IN_FLIGHT = (20, 200, 1000)
RCU_TARGET = 6.0
# The floor the promises set is 11 WCU a job (claim 2, slot 2, mark 1, submitted 3, lease 1, leave the index 2);
# the target leaves room above it for the newest-upload record, check hand-overs and records past 1 KB.
WCU_TARGET = 24.0
ITEM_TARGET_BYTES = 1024
JOB_ID_BYTES = 32
LABELS = [
    *((f"6a. DynamoDB RCU per job, upload -> SUCCEEDED, MaxInFlight {n:,}", f"<= {RCU_TARGET:g}") for n in LIMITS),
    *((f"6b. DynamoDB WCU per job, upload -> SUCCEEDED, MaxInFlight {n:,}", f"<= {WCU_TARGET:g}") for n in LIMITS),
    ("6c. Scan calls on the hot path (submit + poll)", "0"),
    *((f"6d. largest item in the table, {n:,} jobs in flight (bytes)", "<= 1 KB, flat") for n in IN_FLIGHT),
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


def _due_entry(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item or "due_shard" not in item or "next_check_at" not in item:
        return None
    return {k: v for k, v in item.items() if k in ("job_id", "due_shard", "next_check_at", *DUE_INDEX_ATTRIBUTES)}


def _slot_entry(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item or "slot_pool" not in item or "holder" not in item:
        return None
    return {k: item[k] for k in ("job_id", "slot_pool", "holder")}


def _entry_writes(old: dict[str, Any] | None, new: dict[str, Any] | None, keys: tuple[str, ...]) -> float:
    """An index's writes for one table write: put, delete, or update of the projected entry (two if keys move)."""
    if old is None and new is None:
        return 0.0
    if old is None or new is None:
        return _wcu(item_size(old or new))
    if any(old.get(k) != new.get(k) for k in keys):
        return _wcu(item_size(old)) + _wcu(item_size(new))
    return _wcu(item_size(new)) if old != new else 0.0


def _index_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    due = _entry_writes(_due_entry(old), _due_entry(new), ("due_shard", "next_check_at"))
    return due + _entry_writes(_slot_entry(old), _slot_entry(new), ("slot_pool", "holder"))


def _write_label(operation: str, params: dict[str, Any]) -> str:
    """Which pipeline write a call is, from its expressions."""
    condition = params.get("ConditionExpression", "")
    update = params.get("UpdateExpression", "")
    key = (params.get("Item") or params.get("Key") or {}).get("job_id", {}).get("S", "")
    if key.startswith("#slot#"):
        return "slot take" if operation == "PutItem" else "slot release"
    if key.startswith("#latest#"):
        return "newest upload"
    if operation == "PutItem":
        return "claim" if "attribute_not_exists(job_id)" in condition else "save"
    if "lease_owner" in update:
        return "lease"
    if "checks" in update:
        return "record check"
    return operation


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
                self.calls[
                    f"Query {params.get('IndexName')}{' (earliest)' if 'ProjectionExpression' in params else ''}"
                ] += 1
            if operation == "PutItem":
                key = params["Item"]["job_id"]["S"]
                self._write(_write_label(operation, params), key, params["Item"], bool(failed))
            elif operation == "UpdateItem":
                key = params["Key"]["job_id"]["S"]
                self._write(_write_label(operation, params), key, parsed.get("Attributes") or new_image, bool(failed))
            elif operation == "GetItem":
                size = item_size(parsed.get("Item"))
                factor = 1.0 if params.get("ConsistentRead") else 0.5
                self.rcu[operation] += factor * max(1, math.ceil(size / 4096))
            elif operation in ("Query", "Scan"):
                items = parsed.get("Items", [])
                if "ProjectionExpression" in params:  # billed on the whole index entries read, not the projection
                    entries = (_due_entry(i) for i in self.items.values())
                    size = len(items) * max((item_size(e) for e in entries if e), default=0)
                else:
                    size = sum(item_size(i) for i in items)
                self.rcu[f"{operation} {params.get('IndexName', '')}".strip()] += 0.5 * max(1, math.ceil(size / 4096))

    def _write(self, operation: str, key: str, new: dict[str, Any] | None, failed: bool) -> None:
        old = self.items.get(key)
        if failed or new is None:  # a refused conditional write still costs the item's size
            self.wcu[operation + " (refused)"] += _wcu(item_size(old))
            return
        self.wcu[operation] += _wcu(max(item_size(old), item_size(new)))
        self.wcu[operation + ": index"] += _index_writes(old, new)
        self.items[key] = new

    def table_bytes(self) -> int:
        with self._lock:
            return sum(item_size(i) for i in self.items.values())


def _scan_rcu(table_bytes: int) -> float:
    return 0.5 * max(1, math.ceil(table_bytes / 4096))


def _small_body(task: Any) -> tuple[int, Any]:
    return 64 * 1024, iter([b"\x00" * 64 * 1024])


def _prefill(stack: Any, limit: int, holders: int) -> None:
    """Other jobs in flight: slots taken through JobStore on an unwatched client, before the measured run."""
    from seedance_pipeline.adapters.job_store import JobStore

    store = JobStore(stack.table_name, stack.client("dynamodb"), due_shards=1)
    for n in range(holders):
        if not store.acquire_slot(f"{n:0{JOB_ID_BYTES}x}", limit):
            raise RuntimeError(f"could not pre-fill slot {n} of {limit}")


def _run_jobs(quick: bool, limit: int) -> dict[str, Any]:
    from seedance_local.harness import LocalPipeline
    from seedance_simulator import Knobs, SimulatorServer
    from tests.support.images import image_bytes

    jobs = 3 if quick else 8
    others = max(0, limit // 2 - jobs) if limit > 10 else 0
    if quick:
        others = min(others, 10)  # the smoke test's run: the figures are indicative only
    rng = random.Random(6)
    overrides = {
        "CHECK_SCHEDULE_SCALE": str(SCALE),
        "POLL_WINDOW_SECONDS": str(50 * SCALE),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "MAX_IN_FLIGHT": str(limit),
    }
    knobs = Knobs(api_key=API_KEY, video_body_factory=_small_body)
    with MotoServerProcess() as moto, SimulatorServer(api_key=API_KEY, knobs=knobs) as sim:
        stack = external_stack(moto.endpoint)
        reader = stack.client("dynamodb")
        _prefill(stack, limit, others)
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
    job_items = [i for k, i in meter.items.items() if not k.startswith("#")]  # not the slot/bookkeeping items
    return {
        "jobs": jobs,
        "others": others,
        "durations": durations,
        "succeeded": statuses.count("SUCCEEDED"),
        "invocations": invocations,
        "naive_rcu": naive_rcu,
        "meter": meter,
        "mean_item": sum(item_size(i) for i in job_items) / max(1, len(job_items)),
    }


def _largest_items(in_flight_counts: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """The largest item with 20, 200 and 1,000 jobs in flight at MaxInFlight 1,000 (claim, newest upload, slot)."""
    from seedance_pipeline.adapters.job_store import JobStore
    from seedance_pipeline.models import Job, JobStatus

    largest: dict[int, tuple[int, int]] = {}
    with MotoServerProcess() as moto:
        stack = external_stack(moto.endpoint)
        client = stack.client("dynamodb")
        store = JobStore(stack.table_name, client, due_shards=4)
        admitted = 0
        for in_flight in in_flight_counts:
            while admitted < in_flight:
                job_id, key, now = f"{admitted:0{JOB_ID_BYTES}x}", f"uploads/bench/{admitted:06d}.png", time.time()
                job = Job(
                    job_id=job_id,
                    status=JobStatus.WAITING,
                    source_bucket="in-bucket",
                    source_key=key,
                    source_sequencer=f"{admitted:016X}",
                    created_at=now,
                    updated_at=now,
                    next_check_at=now + 120,
                )
                store.claim(job, due_shard=str(admitted % 4))
                store.record_latest_upload("in-bucket", key, sequencer=f"{admitted:016X}", job_id=job_id)
                if not store.acquire_slot(job_id, max(IN_FLIGHT)):
                    raise RuntimeError(f"no slot for job {admitted}")
                admitted += 1
            sizes: list[int] = []
            scan: dict[str, Any] = {"TableName": stack.table_name}
            while True:
                page = client.scan(**scan)
                sizes.extend(item_size(i) for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            largest[in_flight] = (max(sizes), len(sizes))
        stack.stop()
    return largest


def _old_in_flight_item_bytes(in_flight: int) -> int:
    """The previous design's one string-set item of holders, at this many jobs in flight."""
    return item_size({"job_id": {"S": "#in-flight"}, "holders": {"SS": ["x" * JOB_ID_BYTES] * in_flight}})


def run(quick: bool) -> list[Row]:
    rcu_rows: list[Row] = []
    wcu_rows: list[Row] = []
    scans, invocations, all_succeeded = 0, 0, True
    for (rcu_label, rcu_target), (wcu_label, wcu_target), limit in zip(
        LABELS[: len(LIMITS)], LABELS[len(LIMITS) : 2 * len(LIMITS)], LIMITS, strict=True
    ):
        run_ = _run_jobs(quick, limit)
        meter: CapacityMeter = run_["meter"]
        jobs = run_["jobs"]
        rcu, wcu = sum(meter.rcu.values()), sum(meter.wcu.values())
        scans += meter.calls.get("Scan", 0)
        invocations += run_["invocations"]
        all_succeeded = all_succeeded and run_["succeeded"] == jobs
        say(
            FIG,
            f"MaxInFlight {limit}: {jobs} jobs taking {', '.join(f'{d:.0f}' for d in run_['durations'])} s "
            f"(scaled x{SCALE}) with {run_['others']} other jobs in flight, {run_['succeeded']} SUCCEEDED, "
            f"{run_['invocations']} poll invocations (= scheduled minutes); mean job item {run_['mean_item']:.0f} B",
        )
        say(FIG, f"  calls by operation: {dict(meter.calls)}")
        say(FIG, "  RCU per job by operation: " + ", ".join(f"{k} {v / jobs:.2f}" for k, v in meter.rcu.items()))
        say(FIG, "  WCU per job by operation: " + ", ".join(f"{k} {v / jobs:.2f}" for k, v in meter.wcu.items()))
        naive_wcu = 3 * _wcu(int(run_["mean_item"]))  # created, submitted, finished; no index
        rcu_rows.append(
            Row(
                figure=rcu_label,
                this=f"{rcu / jobs:.1f} ({jobs} jobs together)",
                baseline=f"{run_['naive_rcu'] / jobs:.1f} (a Scan a minute, same {run_['invocations']} min)",
                ratio=ratio(rcu, run_["naive_rcu"]),
                target=rcu_target,
                met=rcu / jobs <= RCU_TARGET,
            )
        )
        wcu_rows.append(
            Row(
                figure=wcu_label,
                this=f"{wcu / jobs:.1f}",
                baseline=f"{naive_wcu:.1f} (3 writes of the same item, no index)",
                ratio=ratio(wcu / jobs, naive_wcu),
                target=wcu_target,
                met=wcu / jobs <= WCU_TARGET,
            )
        )
    counts = (5, 10, 20) if quick else IN_FLIGHT
    largest = _largest_items(counts)
    say(
        FIG, "largest item by jobs in flight: " + ", ".join(f"{n}: {b} B of {c} items" for n, (b, c) in largest.items())
    )
    first = largest[counts[0]][0]
    size_rows = [
        Row(
            figure=label,
            this=f"{largest[n][0]:,}" + (f" ({n} in flight: quick run)" if quick else ""),
            baseline=f"{_old_in_flight_item_bytes(n):,} (one set of holders)",
            ratio=ratio(largest[n][0], _old_in_flight_item_bytes(n)),
            target=target,
            met=largest[n][0] <= ITEM_TARGET_BYTES and largest[n][0] == first,
        )
        for (label, target), n in zip(LABELS[2 * len(LIMITS) + 1 :], counts, strict=True)
    ]
    scan_row = Row(
        figure=LABELS[2 * len(LIMITS)][0],
        this=str(scans),
        baseline=f"{invocations} (one per poll minute)",
        ratio="n/a",
        target=LABELS[2 * len(LIMITS)][1],
        met=scans == 0 and all_succeeded,
    )
    return [*rcu_rows, *wcu_rows, scan_row, *size_rows]
