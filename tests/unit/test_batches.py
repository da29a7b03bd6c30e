"""Batch uploads on the fakes: rows become WAITING jobs once, go through the poller's admission, and the last one
to end writes the report and publishes `Batch Completed` once."""

import csv
import io
import json

import pytest

from seedance_pipeline.logic.batch_report import batch_job_ids
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import WRITER_GRACE_SECONDS, JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/shoot/catalogue.csv"


def batch_upload(key=KEY, etag="e1", size=None, sequencer="00B1"):
    return Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag=etag, size=size)


def catalogue() -> bytes:
    return (
        "id,image,prompt,duration,takes\r\n"
        "sku-1,a.jpg,镜头缓慢推进 🐈,5,\r\n"
        "sku-2,b.jpg,two takes,5,2\r\n"
        "sku-3,missing.jpg,no such image,5,\r\n"
        "sku-4,a.jpg,bad duration,seven,\r\n"
    ).encode()


def with_images(storage):
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, "uploads/shoot/b.jpg", image_bytes())


def drain(runtime, store, *, limit=100):
    for _ in range(limit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("the batch never drained")


def report(storage, suffix):
    return storage.uploads[(BUCKET, f"videos/shoot/catalogue.csv.report.{suffix}")].decode()


def test_a_csv_batch_makes_one_job_per_row_and_take_and_reports_each_row_once_done():
    runtime, store, storage, provider = make_runtime()
    with_images(storage)
    storage.add(BUCKET, KEY, catalogue())
    outcome = accept_upload(batch_upload(), runtime, owner="s")
    assert outcome.outcome == "WAITING" and "4 videos queued" in present(outcome.reason)
    assert provider.submissions == []  # the submit function only writes the rows
    batch = present(store.get_batch(present(outcome.job_id)))
    assert (batch.rows, batch.jobs, batch.remaining, batch.refused_rows) == (4, 5, 5, 1)
    assert batch.estimated_tokens > 0 and batch.all_written

    drain(runtime, store)
    lines = [json.loads(line) for line in report(storage, "jsonl").splitlines()]
    assert [(line["id"], line["take"], line["status"]) for line in lines] == [
        ("sku-1", 1, "SUCCEEDED"),
        ("sku-2", 1, "SUCCEEDED"),
        ("sku-2", 2, "SUCCEEDED"),
        ("sku-3", 1, "REJECTED"),
        ("sku-4", 1, "REJECTED"),
    ]
    assert "row 3 (id sku-3): 'image' names uploads/shoot/missing.jpg" in lines[3]["reason"]
    assert "row 4 (id sku-4)" in lines[4]["reason"] and "'duration'" in lines[4]["reason"]
    assert lines[0]["video"].startswith(f"s3://{BUCKET}/videos/shoot/catalogue.csv/sku-1.")
    assert lines[2]["sidecar"] == f"s3://{BUCKET}/videos/shoot/catalogue.csv/sku-2.take2.json"
    assert all(line["task_id"] and line["tokens_estimated"] for line in lines[:3])
    prompts = [body["content"][0]["text"] if "content" in body else body.get("prompt") for body in provider.submissions]
    assert any("镜头缓慢推进 🐈" in str(p) for p in prompts)
    seeds = {str(body.get("seed")) for body in provider.submissions[1:3]}
    assert len(seeds) == 2, "two takes are two different requests"

    rows = list(csv.DictReader(io.StringIO(report(storage, "csv"))))
    assert [(r["id"], r["take"], r["status"]) for r in rows] == [
        (line["id"], str(line["take"]), line["status"]) for line in lines
    ]
    assert len(runtime.events.batches) == 1
    event = runtime.events.batches[0]
    assert event["counts"] == {"REJECTED": 2, "SUCCEEDED": 3} and event["rows"] == 4
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert len(runtime.events.batches) == 1


def test_a_duplicate_delivery_of_the_batch_event_writes_no_row_twice():
    runtime, store, storage, provider = make_runtime()
    with_images(storage)
    storage.add(BUCKET, KEY, catalogue())
    first = accept_upload(batch_upload(), runtime, owner="a")
    writes = [op for op in store.operations if op.startswith("put_new_job")]
    again = accept_upload(batch_upload(), runtime, owner="b")
    assert again.outcome == "DUPLICATE" and again.job_id == first.job_id
    assert [op for op in store.operations if op.startswith("put_new_job")] == writes


def test_a_reupload_of_the_batch_file_is_a_new_batch():
    runtime, store, storage, provider = make_runtime()
    with_images(storage)
    storage.add(BUCKET, KEY, catalogue())
    first = accept_upload(batch_upload(), runtime, owner="a")
    storage.add(BUCKET, KEY, catalogue(), etag="e2")
    second = accept_upload(batch_upload(etag="e2", sequencer="00B2"), runtime, owner="a")
    assert second.outcome == "WAITING" and second.job_id != first.job_id


def test_a_crash_half_way_through_the_write_is_finished_by_the_retry_without_duplicates():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    rows = "image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, 1201))
    storage.add(BUCKET, KEY, rows.encode())
    store.crash_after_jobs = 700  # past the first progress record (500), short of the second
    with pytest.raises(RuntimeError):
        accept_upload(batch_upload(), runtime, owner="dies")
    batch_id = present(store.get_batch(next(iter(store.batches)))).batch_id
    assert present(store.get_batch(batch_id)).written == 500
    store.crash_after_jobs = None
    # A poller may already have moved a written row on: the resumed write must not put it back.
    moved = store.job(batch_job_ids(present(store.get_batch(batch_id)))[600][2])
    store.put_unconditionally(moved.model_copy(update={"status": JobStatus.SUBMITTED, "task_id": "t"}), due_shard="0")
    early = accept_upload(batch_upload(), runtime, owner="retry")
    assert early.outcome == "DUPLICATE", "the writer's lease has not run out yet"
    runtime.clock.advance(runtime.settings.claim_lease_seconds + 1)
    within_grace = accept_upload(batch_upload(), runtime, owner="retry")
    assert within_grace.outcome == "DUPLICATE", "past its lease, the writer's invocation may still be alive"
    runtime.clock.advance(WRITER_GRACE_SECONDS)
    resumed = accept_upload(batch_upload(), runtime, owner="retry")
    assert resumed.outcome == "WAITING"
    batch = present(store.get_batch(batch_id))
    assert batch.all_written and batch.written == 1200
    ids = [job_id for _, _, job_id in batch_job_ids(batch)]
    assert len(set(ids)) == 1200 and all(store.get(i) is not None for i in ids)
    assert store.job(moved.job_id).status is JobStatus.SUBMITTED
    assert len([j for j in store.jobs() if j.batch]) == 1200


def test_a_batch_file_that_cannot_be_read_is_rejected_whole_with_the_reason():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, b"image\r\n\xff\xfe\r\n")
    outcome = accept_upload(batch_upload(), runtime, owner="s")
    assert outcome.outcome == "REJECTED" and "not UTF-8" in present(outcome.reason)
    job = store.job(outcome.job_id)
    assert present(job.error).code == "INVALID_BATCH" and store.batches == {}


def test_rows_are_sent_in_file_order_and_share_max_in_flight_with_single_uploads():
    runtime, store, storage, provider = make_runtime(max_in_flight=2)
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, "uploads/single.jpg", image_bytes())
    storage.add(BUCKET, KEY, ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, 9))).encode())
    storage.add(
        BUCKET, "uploads/other.jsonl", b"".join(b'{"image": "shoot/a.jpg", "prompt": "o%d"}\n' % n for n in range(4))
    )
    accept_upload(batch_upload(), runtime, owner="s")
    accept_upload(Upload(bucket=BUCKET, key="uploads/single.jpg", sequencer="01", etag="e1"), runtime, owner="s")
    accept_upload(Upload(bucket=BUCKET, key="uploads/other.jsonl", etag="e1"), runtime, owner="s")
    most = 0
    for _ in range(200):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        most = max(most, len(store.slots))
        if all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            break
        runtime.clock.advance(30)
    assert most <= 2
    batch_prompts = [b.get("prompt") for b in provider.submissions if str(b.get("prompt", "")).startswith("row")]
    assert batch_prompts == [f"row {n}" for n in range(1, 9)]
    assert len(provider.submissions) == 13, "every row and the single upload sent exactly once"
    assert all(j.status is JobStatus.SUCCEEDED for j in store.jobs())
    assert len(runtime.events.batches) == 2


def test_a_report_write_that_fails_is_done_by_a_later_poll_and_the_batch_completes_once():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, b"image\r\na.jpg\r\n")
    accept_upload(batch_upload(), runtime, owner="s")
    real_upload = storage.upload_stream
    failures = {"left": 1}

    def s3_fails_once_on_the_report(stream, bucket, key, *, content_type):
        if key.endswith(".report.jsonl") and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("S3 connection reset")
        real_upload(stream, bucket, key, content_type=content_type)

    storage.upload_stream = s3_fails_once_on_the_report  # type: ignore[method-assign]
    for _ in range(40):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(200)
    assert failures["left"] == 0
    assert (BUCKET, "videos/shoot/catalogue.csv.report.jsonl") in storage.uploads
    assert len(runtime.events.batches) == 1


def test_single_uploads_made_after_a_large_batch_are_not_queued_behind_all_of_it():
    runtime, store, storage, provider = make_runtime(max_in_flight=2)
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, ("image,prompt\r\n" + "".join(f"a.jpg,row {n}\r\n" for n in range(1, 21))).encode())
    accept_upload(batch_upload(), runtime, owner="s")
    margin = runtime.settings.poll_deadline_margin_seconds
    run_poll(runtime, owner="p", time_left=lambda: margin + 1.0)  # the first rows take both slots
    assert len(store.slots) == 2
    runtime.clock.advance(1)
    for n in range(2):
        storage.add(BUCKET, f"uploads/single-{n}.jpg", image_bytes(), {"prompt": f"single {n}"})
        accept_upload(
            Upload(bucket=BUCKET, key=f"uploads/single-{n}.jpg", sequencer=f"0{n}", etag="e1"), runtime, owner="s"
        )
    drain(runtime, store, limit=400)
    prompts = [body.get("prompt") for body in provider.submissions]
    assert prompts[:2] == ["row 1", "row 2"]
    assert prompts.index("single 1") < 6, f"the singles waited behind the batch: {prompts}"
    assert [p for p in prompts if str(p).startswith("row")] == [f"row {n}" for n in range(1, 21)]


def test_a_manifest_asking_for_takes_makes_one_job_per_take_with_different_seeds_and_a_report():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clips/_frames/start.jpg", image_bytes())
    manifest = {"first_frame": "_frames/start.jpg", "prompt": "镜头缓慢推进", "takes": 3, "seed": 7}
    storage.add(BUCKET, "uploads/clips/sunrise.json", json.dumps(manifest, ensure_ascii=False).encode())
    outcome = accept_upload(
        Upload(bucket=BUCKET, key="uploads/clips/sunrise.json", sequencer="0A", etag="e1"), runtime, owner="s"
    )
    assert outcome.outcome == "WAITING" and provider.submissions == []
    drain(runtime, store)
    assert sorted(int(body["seed"]) for body in provider.submissions) == [7, 8, 9]
    report = storage.uploads[(BUCKET, "videos/clips/sunrise.json.report.jsonl")].decode()
    lines = [json.loads(line) for line in report.splitlines()]
    assert [(x["id"], x["take"], x["status"]) for x in lines] == [("sunrise", t, "SUCCEEDED") for t in (1, 2, 3)]
    assert lines[1]["sidecar"] == f"s3://{BUCKET}/videos/clips/sunrise.json/sunrise.take2.json"
    assert len(runtime.events.batches) == 1


def test_a_manifest_with_too_many_takes_is_rejected_naming_the_field():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/clips/x.json", b'{"first_frame": "a.jpg", "takes": 9}')
    outcome = accept_upload(
        Upload(bucket=BUCKET, key="uploads/clips/x.json", sequencer="0B", etag="e1"), runtime, owner="s"
    )
    assert outcome.outcome == "REJECTED" and "'takes'" in present(outcome.reason)
    assert provider.submissions == []


def test_with_a_daily_token_budget_the_batch_says_how_many_days_it_takes():
    runtime, store, storage, provider = make_runtime(daily_token_budget=250_000)
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, ("image,resolution,duration\r\n" + "a.jpg,480p,5\r\n" * 6).encode())
    outcome = accept_upload(batch_upload(), runtime, owner="s")
    batch = present(store.get_batch(present(outcome.job_id)))
    days = -(-batch.estimated_tokens // 250_000)
    assert days >= 2 and f"about {days} day(s) at the DailyTokenBudget of 250,000" in present(outcome.reason)
    assert f"{batch.estimated_tokens:,} tokens estimated" in present(outcome.reason)


def test_the_report_goes_to_the_output_bucket_beside_the_videos():
    runtime, store, storage, provider = make_runtime(output_bucket="out-bucket")
    storage.add(BUCKET, "uploads/shoot/a.jpg", image_bytes())
    storage.add(BUCKET, KEY, b"image\r\na.jpg\r\n")
    accept_upload(batch_upload(), runtime, owner="s")
    drain(runtime, store)
    line = json.loads(storage.uploads[("out-bucket", "videos/shoot/catalogue.csv.report.jsonl")])
    assert line["video"].startswith("s3://out-bucket/videos/shoot/catalogue.csv/1.")
    assert runtime.events.batches[0]["report"]["csv"] == "s3://out-bucket/videos/shoot/catalogue.csv.report.csv"
