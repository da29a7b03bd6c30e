"""Operator commands on a pipeline's jobs table: list, show, retry (backfill is in `backfill_tools.py`).

Plain functions taking a JobStore and boto3 clients, so they are testable without the CLI; `cli_jobs.py` and
`cli_backfill.py` wire them to `seedance-pipeline jobs ...` and `seedance-pipeline backfill ...`. A `Target` says
which pipeline: a deployed stack (its CloudFormation outputs), an explicit table/bucket/endpoint, or the state file
of `local up`. The jobs table is read and written only through JobStore.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from seedance_pipeline.adapters.job_store import BOOKKEEPING_ID_PREFIX, JobStore
from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.ports import JobCatalogPort
from seedance_pipeline.rules.keys import due_shard_for
from seedance_pipeline.settings import Settings

DEFAULT_INPUT_PREFIX = "uploads/"
DEFAULT_OUTPUT_PREFIX = "videos/"
DEFAULT_DUE_SHARDS = 4  # template.yaml DueIndexShards default
LOCAL_STATE_FILE = ".seedance-local.json"
SHORT_ID_LENGTH = 12  # what `jobs list` shows; unique in practice, and `jobs show` accepts any unique prefix
MIN_ID_PREFIX = 6
RETRYABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT})
SUPERSEDED = "SUPERSEDED"  # the error code of a job a newer upload of its key replaced (polling.py)
# moto accepts any credentials; a local endpoint should not need the operator's real ones.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class OperatorError(Exception):
    """An operator request that cannot be done as asked; the message says why and what to do."""


class JobNotFound(OperatorError):
    pass


class AmbiguousJobId(OperatorError):
    pass


class RetryRefused(OperatorError):
    pass


# --- which pipeline ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a pipeline's state lives, and the template parameters the operator commands need to honour."""

    table: str
    bucket: str | None = None
    output_bucket: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    input_prefix: str = DEFAULT_INPUT_PREFIX
    output_prefix: str = DEFAULT_OUTPUT_PREFIX
    due_shards: int = DEFAULT_DUE_SHARDS

    def session(self) -> boto3.Session:
        kwargs: dict[str, Any] = {"profile_name": self.profile, "region_name": self.region}
        if self.endpoint_url:
            kwargs["region_name"] = self.region or "us-east-1"
            if self.profile is None and boto3.Session().get_credentials() is None:
                kwargs.update(_LOCAL_CREDENTIALS)
        return boto3.Session(**kwargs)

    def client(self, service: str) -> Any:
        session: Any = self.session()  # boto3's stubs only accept literal service names
        return session.client(service, endpoint_url=self.endpoint_url)

    def store(self) -> JobStore:
        return JobStore(self.table, self.client("dynamodb"), due_shards=self.due_shards)

    def naming_settings(self) -> Settings:
        return naming_settings(self.input_prefix, self.output_prefix, self.table)


class _NamingSettings(Settings):
    """Settings taken only from the target, never from this shell's environment (which describes no Lambda)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *args: Any, **kwargs: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


# Operator tools never call the provider; the settings still insist on a provider URL, so they get one that can
# never resolve (".invalid" is reserved for exactly this).
_NO_PROVIDER_URL = "https://provider.operator-tools.invalid"


def naming_settings(input_prefix: str, output_prefix: str, table: str = "unused") -> Settings:
    return _NamingSettings(
        jobs_table_name=table, input_prefix=input_prefix, output_prefix=output_prefix, api_base_url=_NO_PROVIDER_URL
    )


def stack_target(stack_name: str, *, profile: str | None = None, region: str | None = None) -> Target:
    """A deployed stack: table and bucket from its Outputs, prefixes and shard count from its Parameters."""
    session = boto3.Session(profile_name=profile, region_name=region)
    stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])}
    if "JobsTableName" not in outputs:
        raise OperatorError(f"stack {stack_name!r} has no JobsTableName output; is it a seedance-s3-pipeline stack?")
    return Target(
        table=outputs["JobsTableName"],
        bucket=outputs.get("InputBucketName"),
        output_bucket=outputs.get("OutputBucketName"),
        region=session.region_name,
        profile=profile,
        input_prefix=parameters.get("InputPrefix") or DEFAULT_INPUT_PREFIX,
        output_prefix=parameters.get("OutputPrefix") or DEFAULT_OUTPUT_PREFIX,
        due_shards=int(parameters.get("DueIndexShards") or DEFAULT_DUE_SHARDS),
    )


def write_local_state(path: Path, target: Target, *, simulator_url: str | None) -> None:
    state = {k: v for k, v in asdict(target).items() if k != "profile"}
    state["simulator_url"] = simulator_url
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def local_target(path: Path) -> Target:
    """The pipeline a running `seedance-pipeline local up` wrote down."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OperatorError(f"{path} not found: start `seedance-pipeline local up` first (in this folder)") from None
    except json.JSONDecodeError as exc:
        raise OperatorError(f"{path} is not valid JSON ({exc}); restart `seedance-pipeline local up`") from None
    fields = set(Target.__dataclass_fields__)
    return Target(**{k: v for k, v in state.items() if k in fields})


# --- jobs list / show -------------------------------------------------------------------------------------------


def list_jobs(store: JobCatalogPort, *, status: JobStatus | None = None, limit: int = 50) -> list[Job]:
    """The newest `limit` jobs, optionally of one status.

    A Scan: fine for an operator's occasional look, never used on a hot path. Sorting newest-first needs every
    match, so the whole table is read.
    """
    jobs = sorted(store.iter_jobs(status=status), key=lambda job: job.created_at, reverse=True)
    return jobs[:limit]


def show_job(store: JobCatalogPort, job_id: str) -> Job:
    """The job with this id, or with the only id that starts with it (at least MIN_ID_PREFIX characters)."""
    job = None if job_id.startswith(BOOKKEEPING_ID_PREFIX) else store.get(job_id)
    if job is not None:
        return job
    if len(job_id) < MIN_ID_PREFIX:
        raise JobNotFound(f"no job {job_id!r} in the table (a shortened id needs at least {MIN_ID_PREFIX} characters)")
    # A Scan, like `jobs list`: an operator's occasional look, never a hot path.
    matches = [j for j in store.iter_jobs() if j.job_id.startswith(job_id)]
    if not matches:
        raise JobNotFound(f"no job {job_id!r} in the table")
    if len(matches) > 1:
        listed = ", ".join(sorted(j.job_id for j in matches)[:10])
        raise AmbiguousJobId(f"{job_id!r} starts {len(matches)} job ids ({listed}); give more characters")
    return matches[0]


def short_id(job_id: str) -> str:
    return job_id[:SHORT_ID_LENGTH]


# --- jobs retry -------------------------------------------------------------------------------------------------


def retry_job(store: JobCatalogPort, job_id: str, *, now: float | None = None) -> Job:
    """Put a FAILED or TIMED_OUT job back to WAITING, due now; the poller's submit_job then sends it again.

    The resolved request and the attempt count stay; everything about the last try goes. created_at restarts
    too: the age limit (MaxJobAgeMinutes) counts from it, and a TIMED_OUT job would otherwise time out again at
    once. The original time is kept in the note.
    """
    job = show_job(store, job_id)
    job_id = job.job_id
    if job.status not in RETRYABLE_STATUSES:
        allowed = " or ".join(sorted(s.value for s in RETRYABLE_STATUSES))
        raise RetryRefused(f"job {job_id} is {job.status.value}; only {allowed} jobs can be retried")
    if job.error is not None and job.error.code == SUPERSEDED:
        raise RetryRefused(
            f"job {job_id} was replaced by a newer upload of {job.source_key}; that job owns the outputs"
        )
    now = time.time() if now is None else now
    retried = job.model_copy(
        update={
            "status": JobStatus.WAITING,
            "notes": [*job.notes, _retry_note(job, now)],
            "created_at": now,
            "updated_at": now,
            "next_check_at": now,
            "task_id": None,
            "error": None,
            "last_error": None,
            "submission_started_at": None,
            "submitted_at": None,
            "finished_at": None,
            "provider_status": None,
            "checks": 0,
            "delivery_attempts": 0,
            "outputs": None,
            "usage": None,
            "lease_owner": None,
            "lease_until": None,
            # A terminal job whose slot release or event was still pending: the retry is a new attempt, and the
            # old terminal event would now describe a job that is live again.
            "finalize_pending": False,
        }
    )
    # Deliberately unconditional: an operator overrides the terminal record (and its TTL goes with it).
    store.put_unconditionally(retried, due_shard=due_shard_for(job_id, store.due_shards))
    return retried


def _retry_note(job: Job, now: float) -> str:
    was = job.status.value + (f" with {job.error.code}: {job.error.message}" if job.error else "")
    return f"retried by an operator at {iso_time(now)} (was {was}; first created at {iso_time(job.created_at)})"


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
