"""In-flight slots. Admission must cost the same at MaxInFlight 10 and 5,000, so no item may grow with the jobs in
flight (one string set of holders, rewritten by every take and release, cost ~32 WCU a take at 1,000 in flight).
Each slot is its own small item `#slot#<n>` (n < limit, ~80 bytes) naming its holder:

- taking one is a conditional PutItem ("free, mine already, or its holder outlived any job"): 1 WCU, plus 1 WCU
  for each busy slot tried. Candidates in order: the slot the job already holds (this process's memory, else the
  slot-holders index: taking twice, or again after a crash, never takes a second one), slots this process saw
  free (given back, or listed: at saturation a finishing job's slot goes straight to the next waiting job), then
  SLOT_PROBES slots from a hash of the job id (every slot when the limit is no larger). Only when all of these are
  busy does a take list the holders (~70 bytes each: this read, on this path only, grows with the jobs in flight)
  and try free ones, so admission still reaches the limit exactly;
- giving one back is a conditional update `holder = :job` that removes the holder: 1 WCU, harmless repeated;
- the sparse index slot-holders (slot_pool, holder; KEYS_ONLY) lists the holders for the JobsInFlight metric and
  the reconciliation of holders with live jobs, and finds the slot of a job another process took: 1 index write
  when a slot is taken, 1 when it is given back (its partition takes ~500 jobs a second);
- a crash cannot hold a slot for ever: a slot carries expires_at (twice MaxJobAgeMinutes, as long as a paid job
  never answered lives, plus a margin after it was taken; no job lives longer) and an expired holder counts as
  free; the table's TTL then deletes idle slots.

The alternative, a counter item moved in one TransactWriteItems with the job's own record, counts exactly too, but
a transaction bills each item twice (~4 WCU to take and ~5 to give back, folded into the job's own writes, against
~2 and ~2 here, with the index) and the counter is one hot key taking every admission. What slots give up: the
index is eventually consistent, so a holder listing can lag a take by a moment (admission itself rests on the
conditional writes), and a limit lowered below the number in flight drains rather than applying at once.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from seedance_pipeline.adapters.dynamo_codec import is_condition_failure, update_if

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SLOT_INDEX = "slot-holders"
SLOT_ITEM_PREFIX = "#slot#"
SLOT_POOL = "slots"  # the slot-holders index's partition key: held slots carry it, free ones do not
SLOT_PROBES = 4
_SLOT_CACHE_SIZE = 4096
_SLOT_HINTS_PER_TAKE = 4
_SLOT_HINTS_KEPT = 512
_SLOT_HINT_SECONDS = 30.0  # a slot seen free longer ago than this has probably been taken by another process


def slot_item_id(slot: int) -> str:
    return f"{SLOT_ITEM_PREFIX}{slot}"


def slot_probe_order(job_id: str, limit: int, probes: int = SLOT_PROBES) -> list[int]:
    """The slots a job tries, spread by its id so concurrent takes rarely collide: all of them for a small limit,
    else `probes` slots stepping through the range by a stride coprime with it (no slot repeats)."""
    digest = int(hashlib.sha256(job_id.encode()).hexdigest()[:16], 16)
    start = digest % limit
    if limit <= probes:
        return [(start + i) % limit for i in range(limit)]
    step = 1 + (digest >> 32) % (limit - 1)
    while math.gcd(step, limit) != 1:
        step = step % (limit - 1) + 1
    return [(start + i * step) % limit for i in range(probes)]


class InFlightSlots:
    """The in-flight slots of one jobs table; JobStore delegates acquire_slot, release_slot and slot_holders here."""

    def __init__(
        self, table_name: str, client: DynamoDBClient, *, slot_lifetime_seconds: float, clock: Callable[[], float]
    ) -> None:
        self._table = table_name
        self._client = client
        self._slot_lifetime = slot_lifetime_seconds
        self._clock = clock
        # Which slot each job took through this store, and slots it gave back (free for the next take).
        self._slot_of: OrderedDict[str, int] = OrderedDict()
        self._free_slots: deque[tuple[int, float]] = deque(maxlen=_SLOT_HINTS_KEPT)
        self._slot_lock = threading.Lock()

    def acquire_slot(self, job_id: str, limit: int, *, new_holder: bool = False) -> bool:
        """Take a slot for job_id, or confirm the one it holds; False when no candidate slot is free."""
        now = self._clock()
        tried: set[int] = set()
        for slot in self._slot_candidates(job_id, limit, new_holder=new_holder):
            if slot in tried:
                continue
            tried.add(slot)
            if self._take_slot(slot, job_id, now):
                with self._slot_lock:
                    self._slot_of[job_id] = slot
                    self._slot_of.move_to_end(job_id)
                    while len(self._slot_of) > _SLOT_CACHE_SIZE:
                        self._slot_of.popitem(last=False)
                return True
        return False

    def held_slot(self, job_id: str) -> int | None:
        with self._slot_lock:
            return self._slot_of.get(job_id)

    def release_slot(self, job_id: str, *, slot: int | None = None) -> None:
        with self._slot_lock:
            cached = self._slot_of.pop(job_id, None)
        # The slot this process took, else the one the job record names (taken by another function): a conditional
        # update each, so a wrong guess releases nothing; only when both miss is the holder looked up.
        for known in dict.fromkeys(s for s in (cached, slot) if s is not None):
            if self._give_back(known, job_id):
                return
        for held in self._slots_held_by(job_id):
            self._give_back(held, job_id)

    def slot_holders(self) -> set[str]:
        """The jobs holding slots, from the sparse slot-holders index (eventually consistent: good for a metric and
        for reconciling holders with live jobs; admission itself relies on the conditional writes)."""
        return set(self._held_slots().values())

    def _held_slots(self) -> dict[int, str]:
        held: dict[int, str] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": SLOT_INDEX,
            "KeyConditionExpression": "slot_pool = :pool",
            "ExpressionAttributeValues": {":pool": {"S": SLOT_POOL}},
        }
        while True:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                held[int(item["job_id"]["S"].removeprefix(SLOT_ITEM_PREFIX))] = item["holder"]["S"]
            if "LastEvaluatedKey" not in response:
                return held
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _slot_candidates(self, job_id: str, limit: int, *, new_holder: bool) -> Iterator[int]:
        # The slot this job already holds first, so taking twice (or again after a crash) never takes a second one.
        with self._slot_lock:
            cached = self._slot_of.get(job_id)
        if cached is not None:
            yield cached
        elif not new_holder:
            yield from self._slots_held_by(job_id)
        # Slots this process recently gave back or saw free are tried next: at saturation a finishing job's slot
        # goes straight to the next waiting one instead of being searched for.
        yield from self._free_hints(limit)
        probes = slot_probe_order(job_id, limit)
        yield from probes
        if len(probes) == limit:
            return  # every slot was tried
        # Most slots are busy: list the held ones (~70 bytes each, so this read grows with the jobs in flight, on
        # this path only) and try free ones, so admission still reaches the limit; the rest become hints.
        held = self._held_slots()
        if len(held) >= limit:
            return
        start = probes[0]
        free = [slot for offset in range(limit) if (slot := (start + offset) % limit) not in held]
        now = self._clock()
        with self._slot_lock:
            self._free_slots.extend((slot, now) for slot in free[SLOT_PROBES:])
        yield from free[:SLOT_PROBES]

    def _free_hints(self, limit: int) -> Iterator[int]:
        tried = 0
        while tried < _SLOT_HINTS_PER_TAKE:
            with self._slot_lock:
                if not self._free_slots:
                    return
                slot, noted_at = self._free_slots.popleft()
            if slot < limit and self._clock() - noted_at < _SLOT_HINT_SECONDS:
                tried += 1
                yield slot

    def _take_slot(self, slot: int, job_id: str, now: float) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "job_id": {"S": slot_item_id(slot)},
                    "holder": {"S": job_id},
                    "slot_pool": {"S": SLOT_POOL},
                    "expires_at": {"N": str(int(now + self._slot_lifetime))},
                },
                # An expired holder outlived any job (twice MaxJobAgeMinutes plus a margin): its slot leaked in a crash.
                ConditionExpression="attribute_not_exists(holder) OR holder = :job OR expires_at < :now",
                ExpressionAttributeValues={":job": {"S": job_id}, ":now": {"N": str(int(now))}},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _give_back(self, slot: int, job_id: str) -> bool:
        released = self._update_if(
            Key={"job_id": {"S": slot_item_id(slot)}},
            UpdateExpression="REMOVE holder, slot_pool",
            ConditionExpression="holder = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
            ReturnValues="ALL_NEW",
        )
        if released:
            with self._slot_lock:
                self._free_slots.appendleft((slot, self._clock()))
        return released

    def _slots_held_by(self, job_id: str) -> list[int]:
        response = self._client.query(
            TableName=self._table,
            IndexName=SLOT_INDEX,
            KeyConditionExpression="slot_pool = :pool AND holder = :job",
            ExpressionAttributeValues={":pool": {"S": SLOT_POOL}, ":job": {"S": job_id}},
        )
        return [int(item["job_id"]["S"].removeprefix(SLOT_ITEM_PREFIX)) for item in response.get("Items", [])]

    def _update_if(self, **request: Any) -> bool:
        return update_if(self._client, self._table, **request)
