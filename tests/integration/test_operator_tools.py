"""Operator commands against a LocalStack (moto server from template.yaml) with the real handlers and the simulator:
the plain functions of operator_tools, and the same commands through `seedance-pipeline ... --table`."""

from __future__ import annotations

import importlib
import json
import re
import time
from dataclasses import dataclass

import pytest

from seedance_local import backfill_tools, cli, operator_tools
from seedance_local.operator_tools import RetryRefused, Target
from seedance_pipeline.models import Job, JobError, JobStatus, Upload
from seedance_pipeline.rules.keys import due_shard_for, job_id_for
from tests.support.expect import present
from tests.support.images import image_bytes

# Powertools binds its log handler to sys.stdout when this module is first imported. Import it at collection, so
# it binds to pytest's session-wide capture and not to one test's capsys stream, which closes after that test.
importlib.import_module("seedance_pipeline.observability")


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # job ids and messages on one line each in rich tables


@pytest.fixture
def target(stack) -> Target:
    return Target(table=stack.table_name, bucket=stack.bucket, region=stack.region, endpoint_url=stack.endpoint_url)


@pytest.fixture
def cli_target(stack) -> list[str]:
    return ["--table", stack.table_name, "--endpoint-url", stack.endpoint_url, "--region", stack.region]


@dataclass
class FinishedJobs:
    pipeline: object
    failed: Job
    succeeded: Job


@pytest.fixture
def finished(make_pipeline, sim) -> FinishedJobs:
    """Two uploads through the real handlers: the provider fails the first task and finishes the second."""
    pipeline = make_pipeline()
    sim.knobs.fail_next = 1
    for key in ("uploads/ops/refused.png", "uploads/ops/fine.png"):
        pipeline.submit(pipeline.upload(key, image_bytes(640, 480, "PNG"), {"resolution": "480p"}))
    jobs = pipeline.run_until_terminal(timeout=60)
    failed, succeeded = jobs["uploads/ops/refused.png"], jobs["uploads/ops/fine.png"]
    assert failed.status is JobStatus.FAILED
    assert succeeded.status is JobStatus.SUCCEEDED
    return FinishedJobs(pipeline, failed, succeeded)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


# --- list / show ------------------------------------------------------------------------------------------------


def test_list_returns_jobs_newest_first_without_bookkeeping_items(finished, target):
    jobs = operator_tools.list_jobs(target.store())

    assert [job.job_id for job in jobs] == [finished.succeeded.job_id, finished.failed.job_id]


def test_the_job_store_scan_pages_through_every_job_once_and_skips_bookkeeping_items(stack, target):
    store = target.store()
    now = time.time()
    waiting = [_stored_job(store, f"uploads/scan/{n}.png", JobStatus.WAITING, now) for n in range(5)]
    failed = [_stored_job(store, f"uploads/scan/bad-{n}.png", JobStatus.FAILED, now) for n in range(2)]
    assert store.acquire_slot(waiting[0], limit=4)  # the "#in-flight" item
    assert store.record_latest_upload(stack.bucket, "uploads/scan/0.png", sequencer="01", job_id=waiting[0])

    pages, start = [], None
    while True:
        jobs, start = store.scan_jobs(page_size=2, start=start)
        pages.append([job.job_id for job in jobs])
        if start is None:
            break
    scanned = [job_id for page in pages for job_id in page]

    assert len(pages) > 1
    assert all(len(page) <= 2 for page in pages)
    assert sorted(scanned) == sorted(waiting + failed)
    assert sorted(job.job_id for job in store.iter_jobs(status=JobStatus.FAILED, page_size=3)) == sorted(failed)


def _stored_job(store, key: str, status: JobStatus, now: float) -> str:
    job_id = job_id_for(Upload(bucket="scan-bucket", key=key, etag="e"))
    job = Job(job_id=job_id, status=status, source_bucket="scan-bucket", source_key=key, created_at=now,
              updated_at=now, next_check_at=now)  # fmt: skip
    store.put_unconditionally(job, due_shard=due_shard_for(job_id, store.due_shards))
    return job_id


def test_list_filters_by_status_from_the_command_line(finished, cli_target, capsys):
    code = cli.main(["jobs", "list", "--status", "failed", *cli_target])

    assert code == 0
    out = capsys.readouterr().out
    assert finished.failed.job_id[:12] in out
    assert finished.failed.job_id not in out  # short ids: one line per job when piped
    assert "MODERATION_OUTPUT_VIDEO" in out  # the simulator fails it as a flagged output
    assert finished.succeeded.job_id[:12] not in out


def test_show_prints_the_job_record_as_json(finished, cli_target, capsys):
    code = cli.main(["jobs", "show", finished.succeeded.job_id, *cli_target])

    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["job_id"] == finished.succeeded.job_id
    assert record["status"] == "SUCCEEDED"
    assert record["outputs"]["video_key"] == f"videos/ops/fine.png.{finished.succeeded.job_id[:12]}.mp4"


def test_show_of_an_unknown_job_is_one_error_line(stack, cli_target, capsys):
    assert cli.main(["jobs", "show", "0" * 32, *cli_target]) == 1
    assert "no job" in _one_line_error(capsys)


# --- retry ------------------------------------------------------------------------------------------------------


def test_retry_puts_a_failed_job_back_to_waiting_and_the_next_poll_resubmits_it(finished, target, sim):
    store = target.store()
    before = time.time()

    retried = operator_tools.retry_job(store, finished.failed.job_id)

    record = store.get(finished.failed.job_id)
    assert record.status is JobStatus.WAITING
    assert record.task_id is None
    assert record.error is None
    assert record.submission_started_at is None
    assert record.lease_owner is None
    assert record.lease_until is None
    assert record.attempts == finished.failed.attempts == 1
    assert record.request == finished.failed.request
    assert record.notes[-1].startswith("retried by an operator at ")
    shard = due_shard_for(record.job_id, store.due_shards)
    assert record.job_id in {job.job_id for job in store.due_jobs(shard, time.time())}
    assert before <= present(retried.next_check_at) <= time.time()

    submits = sim.counters.submit
    finished.pipeline.poll()
    assert sim.counters.submit == submits + 1
    assert store.get(record.job_id).task_id not in (None, finished.failed.task_id)

    jobs = finished.pipeline.run_until_terminal(timeout=60)
    assert jobs["uploads/ops/refused.png"].status is JobStatus.SUCCEEDED
    assert jobs["uploads/ops/refused.png"].attempts == 2


def test_retry_of_a_succeeded_job_is_refused_with_a_clear_message(finished, target, cli_target, capsys):
    with pytest.raises(RetryRefused, match="SUCCEEDED; only FAILED or TIMED_OUT"):
        operator_tools.retry_job(target.store(), finished.succeeded.job_id)

    assert cli.main(["jobs", "retry", finished.succeeded.job_id, *cli_target]) == 1
    assert "only FAILED or TIMED_OUT jobs can be retried" in _one_line_error(capsys)
    assert target.store().get(finished.succeeded.job_id).status is JobStatus.SUCCEEDED


def test_retry_of_a_timed_out_job_restarts_its_age_clock(stack, target):
    store = target.store()
    long_ago = time.time() - 3 * 3600
    job = Job(
        job_id="f" * 32,
        status=JobStatus.TIMED_OUT,
        source_bucket=stack.bucket,
        source_key="uploads/slow.png",
        task_id="cgt-old",
        attempts=1,
        created_at=long_ago,
        updated_at=long_ago,
        finished_at=long_ago + 7200,
        error=JobError(code="TIMED_OUT", message="the provider did not finish"),
        finalize_pending=True,  # its slot release and event had not happened yet
    )
    store.put_unconditionally(job, due_shard=None)

    retried = operator_tools.retry_job(store, job.job_id)

    assert retried.status is JobStatus.WAITING
    assert store.get(job.job_id).finalize_pending is False
    assert retried.created_at > long_ago + 3 * 3600 - 60
    assert "was TIMED_OUT with TIMED_OUT: the provider did not finish" in retried.notes[-1]


# --- backfill ---------------------------------------------------------------------------------------------------


def test_backfill_creates_waiting_jobs_once_and_ignores_keys_outside_the_input_prefix(
    stack, target, cli_target, make_pipeline, sim, capsys
):
    s3 = stack.client("s3")
    images = {"uploads/old/a.png": image_bytes(640, 480, "PNG"), "uploads/old/deeper/b.jpg": image_bytes(800, 600)}
    for key, body in images.items():
        s3.put_object(Bucket=stack.bucket, Key=key, Body=body, Metadata={"resolution": "480p"})
    for key in ("notes/readme.txt", "videos/old/c.mp4", "uploads/empty-folder/"):
        s3.put_object(Bucket=stack.bucket, Key=key, Body=b"not ours")
    store = target.store()

    # Objects uploaded "before the stack existed": past the settle time that waits for in-flight events.
    first = backfill_tools.backfill(s3, store, stack.bucket, "", target.naming_settings(), settle_seconds=0)

    assert (first.created, first.already_present, first.ignored) == (2, 0, 3)
    for key in images:
        etag = s3.head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
        job = store.get(job_id_for(Upload(bucket=stack.bucket, key=key, etag=etag)))
        assert job.status is JobStatus.WAITING
        assert job.source_etag == etag
        assert job.next_check_at <= time.time()

    assert cli.main(["backfill", f"s3://{stack.bucket}/", "--include-recent", *cli_target]) == 0
    assert "created 0, already present 2, ignored 3" in capsys.readouterr().out
    assert len(operator_tools.list_jobs(target.store())) == 2

    # The poller sends the backfilled jobs like any other waiting job.
    pipeline = make_pipeline()
    for key in images:
        etag = s3.head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
        pipeline.job_ids[key] = job_id_for(Upload(bucket=stack.bucket, key=key, etag=etag))
    jobs = pipeline.run_until_terminal(timeout=60)
    assert {job.status for job in jobs.values()} == {JobStatus.SUCCEEDED}
    assert sim.counters.submit == 2


def test_backfill_counts_an_image_whose_video_is_newer_as_already_present(stack, target, make_pipeline):
    pipeline = make_pipeline()
    pipeline.submit(pipeline.upload("uploads/done.png", image_bytes(640, 480, "PNG"), {"resolution": "480p"}))
    assert pipeline.run_until_terminal(timeout=60)["uploads/done.png"].status is JobStatus.SUCCEEDED

    report = backfill_tools.backfill(
        stack.client("s3"), target.store(), stack.bucket, "uploads/", target.naming_settings(), settle_seconds=0
    )

    # Its job record is still there, so it counts as having a job; once the record has expired (TTL), the newer
    # sidecar alone makes it "already present".
    assert (report.created, report.already_present + report.has_job, report.ignored) == (0, 1, 0)


def test_target_selection_needs_exactly_one_of_stack_table_or_local(capsys, tmp_path, monkeypatch):
    assert cli.main(["jobs", "list"]) == 2
    assert "exactly one of --stack" in _one_line_error(capsys)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["jobs", "list", "--local"]) == 1
    assert "local up" in _one_line_error(capsys)


def test_stack_target_reads_the_table_and_bucket_from_the_stack_outputs(stack, monkeypatch, capsys):
    # A stand-in for the deployed stack: its Outputs and Parameters as `sam deploy` leaves them.
    template = {
        "Parameters": {"InputPrefix": {"Type": "String"}, "DueIndexShards": {"Type": "Number"}},
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"JobsTableName": {"Value": stack.table_name}, "InputBucketName": {"Value": stack.bucket}},
    }
    stack.client("cloudformation").create_stack(
        StackName="seedance-prod",
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "InputPrefix", "ParameterValue": "incoming/"},
            {"ParameterKey": "DueIndexShards", "ParameterValue": "8"},
        ],
    )
    for name, value in stack.environment().items():
        if name.startswith("AWS_"):  # what a profile and region would give: the "account" is the moto server
            monkeypatch.setenv(name, value)

    target = operator_tools.stack_target("seedance-prod")

    assert (target.table, target.bucket) == (stack.table_name, stack.bucket)
    assert (target.input_prefix, target.output_prefix, target.due_shards) == ("incoming/", "videos/", 8)
    assert cli.main(["jobs", "list", "--stack", "seedance-prod"]) == 0
    assert "0 job(s)" in capsys.readouterr().out


def test_list_and_show_as_json_carry_whole_ids_and_iso_times(finished, cli_target, capsys):
    assert cli.main(["jobs", "list", "--output", "json", *cli_target]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {job["job_id"] for job in listed} == {finished.failed.job_id, finished.succeeded.job_id}

    assert cli.main(["jobs", "show", finished.succeeded.job_id[:12], *cli_target]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["job_id"] == finished.succeeded.job_id
    for name in ("created_at", "updated_at", "finished_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record[name]), record[name]


def test_show_and_retry_take_a_unique_prefix_and_refuse_short_or_ambiguous_ones(stack, target, cli_target, capsys):
    store = target.store()
    now = time.time()
    ids = ["abcdef0123" + "0" * 22, "abcdef0456" + "0" * 22]
    for job_id in ids:
        job = Job(job_id=job_id, status=JobStatus.FAILED, source_bucket="b", source_key=f"uploads/{job_id}.png",
                  created_at=now, updated_at=now, error=JobError(code="PROVIDER_FAILURE", message="no"))  # fmt: skip
        store.put_unconditionally(job, due_shard=None)

    assert operator_tools.show_job(store, "abcdef04").job_id == ids[1]
    with pytest.raises(operator_tools.AmbiguousJobId, match="starts 2 job ids") as ambiguous:
        operator_tools.show_job(store, "abcdef0")
    assert all(job_id in str(ambiguous.value) for job_id in ids)
    with pytest.raises(operator_tools.JobNotFound, match="at least 6 characters"):
        operator_tools.show_job(store, "abcde")

    assert cli.main(["jobs", "retry", "abcdef01", *cli_target]) == 0
    assert f"job {ids[0]} is WAITING again" in capsys.readouterr().out
    assert store.get(ids[0]).status is JobStatus.WAITING


def test_backfill_skips_objects_whose_upload_already_has_a_job_and_says_so(
    stack, target, cli_target, make_pipeline, capsys
):
    pipeline = make_pipeline()
    outcome = pipeline.submit(pipeline.upload("uploads/bad.png", image_bytes(640, 480, "PNG"), {"ratio": "5:4"}))
    job = pipeline.jobs()["uploads/bad.png"]
    assert job.status is JobStatus.REJECTED, outcome

    report = backfill_tools.backfill(
        stack.client("s3"), target.store(), stack.bucket, "uploads/", target.naming_settings(), settle_seconds=0
    )

    assert (report.created, report.has_job, dict(report.existing_statuses)) == (0, 1, {"REJECTED": 1})
    assert len(operator_tools.list_jobs(target.store())) == 1
    assert cli.main(["backfill", f"s3://{stack.bucket}/uploads/", "--include-recent", *cli_target]) == 0
    assert "skipped 1 that already have a job (1 REJECTED;" in capsys.readouterr().out


def test_backfill_leaves_fresh_objects_to_their_s3_event_so_one_upload_never_makes_two_jobs(
    stack, target, cli_target, make_pipeline, sim, capsys
):
    """An event job's id comes from the event's sequencer, which a listing never shows: if backfill took an object
    whose event is still on its way, the two would be two jobs and two payments. Fresh objects are left alone."""
    pipeline = make_pipeline()
    event = pipeline.upload("uploads/fresh.png", image_bytes(640, 480, "PNG"), {"resolution": "480p"})

    report = backfill_tools.backfill(
        stack.client("s3"), target.store(), stack.bucket, "uploads/", target.naming_settings()
    )
    assert (report.created, report.recent) == (0, 1)
    assert cli.main(["backfill", f"s3://{stack.bucket}/uploads/", *cli_target]) == 0
    assert "left 1 modified in the last 15 minutes" in capsys.readouterr().out

    pipeline.submit(event)  # the delayed event arrives
    assert pipeline.run_until_terminal(timeout=60)["uploads/fresh.png"].status is JobStatus.SUCCEEDED
    later = backfill_tools.backfill(
        stack.client("s3"), target.store(), stack.bucket, "uploads/", target.naming_settings(), settle_seconds=0
    )
    assert (later.created, later.has_job) == (0, 1)
    assert sim.counters.tasks_created == 1
