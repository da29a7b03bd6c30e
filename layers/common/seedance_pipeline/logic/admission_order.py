"""The order in which the poller offers waiting jobs a slot: sources in turns, counting what each has in flight.

A source is a batch file (all its rows and takes) or a single upload; job ids end with their source's tag
(rules/keys.source_tag). A job's turn is the number of its source's jobs already in flight plus those waiting ahead
of it; turns go in order, ties to the older source. Within a source, jobs go oldest first, which for a batch is
file order. So a single upload made after a 10,000-row batch is offered the next free slot as soon as the batch
holds one, rather than waiting for the whole batch, and two batches progress side by side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from seedance_pipeline.rules.keys import source_tag

T = TypeVar("T")


def sources_of(job_ids: Iterable[str]) -> Counter[str]:
    """Jobs per source, e.g. of the slot holders."""
    return Counter(source_tag(job_id) for job_id in job_ids)


def source_count(jobs: Sequence[T], *, job_id: Callable[[T], str]) -> int:
    return len({source_tag(job_id(item)) for item in jobs})


def fair_order(
    jobs: Sequence[T],
    *,
    job_id: Callable[[T], str],
    created_at: Callable[[T], float],
    in_flight: Counter[str] | None = None,
) -> list[T]:
    held = in_flight or Counter()
    oldest: dict[str, float] = {}
    ahead: Counter[str] = Counter()
    keyed = []
    for item in sorted(jobs, key=created_at):
        source = source_tag(job_id(item))
        oldest.setdefault(source, created_at(item))
        keyed.append(((held[source] + ahead[source], oldest[source], created_at(item)), item))
        ahead[source] += 1
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0])]
