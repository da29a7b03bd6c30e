"""`seedance-pipeline backfill`: WAITING jobs for objects already in a bucket, which never had an S3 event.

A plain function over a boto3 S3 client and a JobStore, so it is testable without the CLI; `cli_backfill.py` wires
it to the command line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from seedance_local.operator_tools import OperatorError, iso_time
from seedance_pipeline.errors import AlreadyClaimed
from seedance_pipeline.models import Job, JobStatus, Upload
from seedance_pipeline.ports import JobCatalogPort
from seedance_pipeline.rules.keys import due_shard_for, ignore_reason, job_id_for, sidecar_key
from seedance_pipeline.settings import Settings

# S3 delivers nearly every event within seconds; a quarter of an hour leaves room for the slow ones and for
# Lambda's own retries of a failed submit invocation.
BACKFILL_SETTLE_SECONDS = 15 * 60


@dataclass
class BackfillReport:
    created: int = 0
    already_present: int = 0
    ignored: int = 0
    has_job: int = 0
    """Objects skipped because their upload already made a job (of any status: a REJECTED one stays rejected)."""
    recent: int = 0
    """Objects newer than the settle time: their S3 event may still be on its way and would make a second job."""
    existing_statuses: Counter[str] = field(default_factory=Counter)

    @property
    def seen(self) -> int:
        return self.created + self.already_present + self.ignored + self.has_job + self.recent


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    version_id: str | None
    last_modified: datetime


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (bucket, prefix)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise OperatorError(f"{url!r} is not an s3://bucket/prefix URL")
    return parts.netloc, parts.path.lstrip("/")


def backfill(
    s3: Any,
    store: JobCatalogPort,
    bucket: str,
    prefix: str,
    settings: Settings,
    *,
    output_bucket: str | None = None,
    now: float | None = None,
    on_object: Callable[[str, str], None] | None = None,
    settle_seconds: float = BACKFILL_SETTLE_SECONDS,
) -> BackfillReport:
    """Turn objects already in the bucket into WAITING jobs, due now, for the poller to submit.

    Idempotent: the job id comes from the object (bucket, key, version or ETag) and `JobStore.claim` creates it
    only once, so a re-run creates nothing. An image whose sidecar is newer than it was already made into a
    video (through its S3 event, under another job id) and also counts as already present: no second payment.
    An object whose upload already has a job (any status, found through the key's latest-upload record and the
    same ETag) is skipped: backfill is for objects that never had an event, not a retry of rejected ones.
    An object modified in the last `settle_seconds` is left alone ("recent"): an event job and a backfill job of
    one upload have different ids (the event's sequencer is not listed), so backfill waits until the event, if
    any, has made its job and recorded the upload as the key's latest.
    `on_object(key, outcome)` reports each object ("created", "present", "ignored", "has a job" or "recent").
    """
    now = time.time() if now is None else now
    report = BackfillReport()
    finished = _sidecar_times(s3, output_bucket or bucket, settings.output_prefix)
    for listed in _latest_objects(s3, bucket, prefix):
        existing = None if ignore_reason(listed.key, settings) else _existing_job(store, bucket, listed)
        if existing is None and not ignore_reason(listed.key, settings) and _is_recent(listed, now, settle_seconds):
            outcome = "recent"
        elif existing is not None:
            outcome = "has a job"
            report.existing_statuses[existing.status.value] += 1
        else:
            outcome = _backfill_one(store, bucket, listed, settings, finished, now)
        setattr(report, _REPORT_FIELD[outcome], getattr(report, _REPORT_FIELD[outcome]) + 1)
        if on_object is not None:
            on_object(listed.key, outcome)
    return report


_REPORT_FIELD = {
    "created": "created",
    "present": "already_present",
    "ignored": "ignored",
    "has a job": "has_job",
    "recent": "recent",
}


def _is_recent(listed: ListedObject, now: float, settle_seconds: float) -> bool:
    return listed.last_modified.timestamp() > now - settle_seconds


def _existing_job(store: JobCatalogPort, bucket: str, listed: ListedObject) -> Job | None:
    """The job this very upload (same key, same bytes) already made through its S3 event, if any."""
    job_id = store.latest_job_for(bucket, listed.key)
    job = store.get(job_id) if job_id else None
    if job is None or job.source_etag != listed.etag:
        return None
    if listed.version_id is not None and job.source_version_id not in (None, listed.version_id):
        return None
    return job


def _backfill_one(
    store: JobCatalogPort,
    bucket: str,
    listed: ListedObject,
    settings: Settings,
    finished: dict[str, datetime],
    now: float,
) -> str:
    if ignore_reason(listed.key, settings):
        return "ignored"
    sidecar_time = finished.get(sidecar_key(listed.key, settings))
    if sidecar_time is not None and sidecar_time >= listed.last_modified:
        return "present"
    upload = Upload(bucket=bucket, key=listed.key, etag=listed.etag, version_id=listed.version_id)
    job = Job(
        job_id=job_id_for(upload),
        status=JobStatus.WAITING,
        source_bucket=bucket,
        source_key=listed.key,
        source_version_id=listed.version_id,
        source_etag=listed.etag,
        created_at=now,
        updated_at=now,
        next_check_at=now,
        notes=[f"created by backfill at {iso_time(now)}"],
    )
    try:
        store.claim(job, due_shard=due_shard_for(job.job_id, store.due_shards))
    except AlreadyClaimed:
        return "present"
    return "created"


def _latest_objects(s3: Any, bucket: str, prefix: str) -> Iterator[ListedObject]:
    """The current version of every object under the prefix (with its version id when versioning is on)."""
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning in ("Enabled", "Suspended"):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):  # a key whose latest entry is a delete marker has none: skipped
                    version_id = version.get("VersionId")
                    yield _listed(version, None if version_id == "null" else version_id)
        return
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield _listed(obj, None)


def _listed(entry: dict[str, Any], version_id: str | None) -> ListedObject:
    # S3 events carry the ETag without quotes; the job id and the If-Match check use that form.
    return ListedObject(entry["Key"], entry["ETag"].strip('"'), version_id, entry["LastModified"])


def _sidecar_times(s3: Any, bucket: str, output_prefix: str) -> dict[str, datetime]:
    times: dict[str, datetime] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=output_prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json"):
                times[obj["Key"]] = obj["LastModified"]
    return times
