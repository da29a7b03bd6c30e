"""No item of the jobs table grows with the number of jobs in flight, and bookkeeping items expire (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.dynamodb_cost import item_size
from seedance_local.local_stack import LocalStack
from seedance_pipeline.adapters.job_store import JobStore, latest_upload_item_id
from seedance_pipeline.adapters.slot_items import slot_item_id
from seedance_pipeline.models import Job, JobStatus
from tests.support.fakes import FakeClock

LIMIT = 1000
KB = 1024


def _items(stack: LocalStack) -> Iterator[dict[str, Any]]:
    client = stack.client("dynamodb")
    scan: dict[str, Any] = {"TableName": stack.table_name, "ConsistentRead": True}
    while True:
        page = client.scan(**scan)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _admit(store: JobStore, clock: FakeClock, n: int) -> None:
    job_id = f"{n:032x}"  # the width of real job ids
    key = f"uploads/burst/{n:06d}.png"
    job = Job(
        job_id=job_id,
        status=JobStatus.WAITING,
        source_bucket="in-bucket",
        source_key=key,
        source_sequencer=f"{n:016X}",
        created_at=clock(),
        updated_at=clock(),
        next_check_at=clock() + 120,
    )
    store.claim(job, due_shard=str(n % store.due_shards))
    assert store.record_latest_upload("in-bucket", key, sequencer=f"{n:016X}", job_id=job_id)
    # new_holder, as submission takes a slot for a job it has just claimed: the look-up of a slot already held reads
    # the whole table on moto, which made this case quadratic in the jobs admitted (300 s, its timeout, when loaded).
    assert store.acquire_slot(job_id, LIMIT, new_holder=True)


def test_the_largest_item_is_the_same_at_20_200_and_1000_jobs_in_flight(stack: LocalStack) -> None:
    clock = FakeClock()
    store = JobStore(stack.table_name, stack.client("dynamodb"), due_shards=4, clock=clock)
    largest: dict[int, tuple[int, int]] = {}
    admitted = 0
    for in_flight in (20, 200, 1000):
        while admitted < in_flight:
            _admit(store, clock, admitted)
            admitted += 1
        items = list(_items(stack))
        bookkeeping = max(item_size(i) for i in items if i["job_id"]["S"].startswith("#"))
        largest[in_flight] = (max(item_size(i) for i in items), bookkeeping)
    assert len(store.slot_holders()) == 1000
    assert largest[20] == largest[200] == largest[1000], largest
    assert largest[1000][0] < KB  # every write of every item costs one WCU
    assert largest[1000][1] < 200


def test_latest_upload_items_expire_after_any_job_that_needs_them_and_each_update_pushes_it(
    stack: LocalStack,
) -> None:
    clock = FakeClock()
    client = stack.client("dynamodb")
    store = JobStore(stack.table_name, client, due_shards=1, bookkeeping_lifetime_seconds=1000, clock=clock)

    def expires_at() -> int:
        key = {"job_id": {"S": latest_upload_item_id("in-bucket", "uploads/cat.png")}}
        item = client.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)["Item"]
        return int(item["expires_at"]["N"])

    assert store.record_latest_upload("in-bucket", "uploads/cat.png", sequencer="01", job_id="j-1")
    assert expires_at() == int(clock() + 1000)
    clock.advance(500)
    assert store.record_latest_upload("in-bucket", "uploads/cat.png", sequencer="02", job_id="j-2")
    assert expires_at() == int(clock() + 1000)


def test_a_slot_whose_holder_outlived_any_job_is_free_again(stack: LocalStack) -> None:
    """A slot taken just before a crash that nobody gave back: it is free once its lifetime has passed."""
    clock = FakeClock()
    client = stack.client("dynamodb")
    store = JobStore(stack.table_name, client, due_shards=1, slot_lifetime_seconds=7200, clock=clock)
    assert store.acquire_slot("j-crashed", 1)
    slot = client.get_item(TableName=stack.table_name, Key={"job_id": {"S": slot_item_id(0)}})["Item"]
    assert int(slot["expires_at"]["N"]) == int(clock() + 7200)  # the table's TTL attribute
    clock.advance(7000)
    assert not store.acquire_slot("j-next", 1)
    clock.advance(201)
    assert store.acquire_slot("j-next", 1)
    assert store.slot_holders() == {"j-next"}
