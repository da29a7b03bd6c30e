"""Every stored or published string is bounded: a hostile provider cannot push a job past DynamoDB's 400 KB."""

import json

import pytest
from botocore.exceptions import ClientError

from seedance_pipeline.adapters.job_events import MAX_DETAIL_BYTES, detail_json
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import (
    CUT_MARK,
    MAX_MESSAGE_CHARS,
    Job,
    JobError,
    JobStatus,
    ProviderState,
    TaskResult,
    Upload,
)
from tests.support.expect import present
from tests.support.fakes import FakeStore, RecordingEvents, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
MEGABYTE_OF_TEXT = "the provider explains at length. " * 32_000


def submitted(runtime, storage):
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    return accept_upload(Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1"), runtime, owner="s")


def poll(runtime, times=20):
    for _ in range(times):
        runtime.clock.advance(30)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)


def test_a_megabyte_failure_reason_fails_the_job_with_the_reason_cut_visibly():
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "FAILED", "failure_reason": MEGABYTE_OF_TEXT}
    job_id = submitted(runtime, storage).job_id
    poll(runtime)
    job = store.job(job_id)
    assert job.status is JobStatus.FAILED and present(job.error).code == "PROVIDER_FAILURE"
    assert len(present(job.error).message) == MAX_MESSAGE_CHARS and present(job.error).message.endswith(CUT_MARK)
    assert present(job.error).message.startswith("the provider explains at length.")
    assert runtime.events.published[-1].status is JobStatus.FAILED


def test_a_huge_status_and_usage_from_a_running_task_keep_the_job_small_and_alive(monkeypatch):
    runtime, store, storage, provider = make_runtime()
    job_id = submitted(runtime, storage).job_id
    hostile = {f"field_{n}": MEGABYTE_OF_TEXT[:1000] for n in range(500)} | {"total_tokens": 104_000}

    def unvalidated_answer(task_id: str, *, deadline: float | None = None) -> TaskResult:
        # As a client that skipped validation would answer.
        return TaskResult.model_construct(
            task_id=task_id,
            state=ProviderState.RUNNING,
            raw_status=MEGABYTE_OF_TEXT,
            usage=hostile,
            malformed_url=False,
        )

    monkeypatch.setattr(provider, "get", unvalidated_answer)
    poll(runtime, times=5)
    job = store.job(job_id)
    assert job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and job.checks >= 1
    assert len(present(job.provider_status)) <= 100 and present(job.provider_status).endswith(CUT_MARK)
    assert job.usage == {"total_tokens": 104_000}
    assert len(json.dumps(store.items[job_id]["job"])) < 20_000


def test_provider_results_are_bounded_when_parsed():
    result = TaskResult(
        task_id="t",
        state="FAILED",
        raw_status="S" * 10_000,
        failure_reason=MEGABYTE_OF_TEXT,
        usage={"total_tokens": 5, "nan": float("nan"), "flag": True, "text": "x", "huge": 10**40},
    )
    assert len(result.raw_status) == 100 and len(present(result.failure_reason)) == MAX_MESSAGE_CHARS
    assert result.usage == {"total_tokens": 5}


def test_long_notes_and_many_notes_are_bounded():
    job = Job(
        job_id="j", status="WAITING", source_bucket="b", source_key="k", created_at=0, updated_at=0,
        notes=["n" * 5000] * 100,
    )  # fmt: skip
    assert len(job.notes) == 20 and all(len(n) <= 500 for n in job.notes)
    assert job.notes[-1].startswith(CUT_MARK)


def huge_job() -> Job:
    error = JobError.model_construct(code="PROVIDER_FAILURE", message=MEGABYTE_OF_TEXT)
    return Job.model_construct(
        **Job(job_id="j", status="FAILED", source_bucket="b", source_key="k", created_at=0, updated_at=0).__dict__
        | {"error": error, "finished_at": 1.0},
    )


def test_event_details_are_cut_to_fit_eventbridge():
    text = detail_json(huge_job())
    assert len(text.encode()) <= MAX_DETAIL_BYTES
    detail = json.loads(text)
    assert detail["truncated"] is True and detail["error"]["message"].endswith(CUT_MARK)
    RecordingEvents().publish(huge_job())  # the fake refuses what EventBridge would refuse; this fits


def test_the_fake_store_refuses_items_over_400_kb_as_dynamodb_does():
    store = FakeStore()
    with pytest.raises(ClientError, match="Item size has exceeded"):
        store.claim(huge_job(), due_shard="0")
    store.claim(huge_job().bounded(), due_shard="0")
