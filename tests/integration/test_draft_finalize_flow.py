"""Draft, then final, over real HTTP: `draft: true` makes a 480p draft; `jobs finalize` writes the final's manifest,
whose upload is a job of its own carrying the draft_task item; one task each, linked both ways."""

from __future__ import annotations

import importlib
import json
import time

import pytest

from seedance_local import cli
from seedance_local.harness import s3_put_event
from seedance_pipeline.models import Job, JobStatus, VideoRequest
from tests.support.images import image_bytes

importlib.import_module("seedance_pipeline.observability")

SEEDANCE_2_5 = "dreamina-seedance-2-5-260628"


def cli_target(stack) -> list[str]:
    return ["--table", stack.table_name, "--endpoint-url", stack.endpoint_url, "--region", stack.region]


def uploaded_event(stack, key: str) -> dict:
    head = stack.client("s3").head_object(Bucket=stack.bucket, Key=key)
    return s3_put_event(
        stack.bucket, key, size=head["ContentLength"], etag=head["ETag"].strip('"'), sequencer=f"{time.time_ns():020X}"
    )


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_draft_then_its_final_make_one_task_each_linked_both_ways(pipeline, sim, stack, capsys):
    meta = {"model": SEEDANCE_2_5, "draft": "true"}
    pipeline.submit(pipeline.upload("uploads/drafts/cat.jpg", image_bytes(800, 450), meta))
    draft = pipeline.run_until_terminal(timeout=60)["uploads/drafts/cat.jpg"]
    assert draft.status is JobStatus.SUCCEEDED, draft.error
    assert sim.counters.request_bodies[-1]["draft"] is True

    assert cli.main(["jobs", "finalize", draft.job_id, "--resolution", "720p", *cli_target(stack)]) == 0
    key = "uploads/drafts/cat.jpg.final.json"
    assert key in capsys.readouterr().out
    pipeline.submit(uploaded_event(stack, key))
    final = pipeline.run_until_terminal(timeout=60)[key]

    assert final.status is JobStatus.SUCCEEDED, final.error
    assert sim.counters.submit == 2
    assert sim.counters.request_bodies[-1]["content"] == [{"type": "draft_task", "draft_task": {"id": draft.task_id}}]
    s3 = stack.client("s3")
    final_sidecar = json.loads(s3.get_object(Bucket=stack.bucket, Key=final.outputs.sidecar_key)["Body"].read())
    draft_sidecar = json.loads(s3.get_object(Bucket=stack.bucket, Key=draft.outputs.sidecar_key)["Body"].read())
    assert final_sidecar["draft"]["of"]["job_id"] == draft.job_id
    assert draft_sidecar["final"]["job_id"] == final.job_id


@pytest.mark.parametrize("dialect", ["unified"], indirect=True)
def test_the_unified_dialect_refuses_a_draft_before_paying(pipeline, sim):
    meta = {"model": SEEDANCE_2_5, "draft": "true"}
    outcome = pipeline.submit(pipeline.upload("uploads/drafts/dog.jpg", image_bytes(), meta))["outcomes"][0]
    assert outcome["outcome"] == "REJECTED"
    assert "unified gateway format cannot carry a draft" in outcome["reason"]
    assert sim.counters.submit == 0


def _stored(stack, job_id: str, *, draft: bool, status: JobStatus) -> None:
    from seedance_local.operator_tools import Target

    now = time.time()
    request = VideoRequest(prompt="p", model=SEEDANCE_2_5, resolution="480p", ratio="16:9", duration=5,
                           watermark=False, camerafixed=False, return_last_frame=False, generate_audio=False,
                           draft=draft)  # fmt: skip
    job = Job(job_id=job_id, status=status, source_bucket=stack.bucket, source_key=f"uploads/{job_id}.png",
              created_at=now, updated_at=now, request=request, task_id="cgt-draft")  # fmt: skip
    Target(table=stack.table_name, region=stack.region, endpoint_url=stack.endpoint_url).store().put_unconditionally(
        job, due_shard=None
    )


def test_finalize_writes_the_finals_manifest_beside_the_drafts_upload(stack, capsys):
    job_id = "d" * 32
    _stored(stack, job_id, draft=True, status=JobStatus.SUCCEEDED)
    assert cli.main(["jobs", "finalize", job_id[:12], "--resolution", "1080p", *cli_target(stack)]) == 0
    body = stack.client("s3").get_object(Bucket=stack.bucket, Key=f"uploads/{job_id}.png.final.json")["Body"].read()
    assert json.loads(body) == {"draft_job": job_id, "resolution": "1080p"}


@pytest.mark.parametrize(
    ("draft", "status", "words"),
    [(False, JobStatus.SUCCEEDED, "not a draft"), (True, JobStatus.RUNNING, "only a delivered draft")],
    ids=["not-a-draft", "not-delivered"],
)
def test_finalize_refuses_a_job_that_is_not_a_delivered_draft(stack, capsys, draft, status, words):
    job_id = "e" * 32
    _stored(stack, job_id, draft=draft, status=status)
    assert cli.main(["jobs", "finalize", job_id, *cli_target(stack)]) != 0
    assert words in capsys.readouterr().err
    listed = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=f"uploads/{job_id}")
    assert listed.get("KeyCount", 0) == 0
