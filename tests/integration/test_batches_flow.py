"""Batch files end to end over moto and the simulator, on both dialects: rows become jobs once, the report is written
row by row when the last one ends, and `Batch Completed` is put on the bus once."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

from seedance_pipeline.logic.batch_report import batch_job_ids
from tests.integration.conftest import DIALECTS
from tests.support.event_capture import EventCapture
from tests.support.expect import present
from tests.support.images import image_bytes

pytestmark = pytest.mark.parametrize("dialect", DIALECTS, indirect=True)

LITE = "doubao-seedance-1-0-lite-i2v-250428"


def put(stack, key: str, data: bytes) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=data)


def run_batch(pipeline, key: str, *, timeout: float = 120.0) -> Any:
    """Poll as the schedule would until the batch's record says it completed."""
    batch_id = pipeline.job_ids.pop(key)  # a batch has no job of its own: the harness must not wait for one
    store = pipeline.runtime.store
    deadline = time.monotonic() + timeout
    while True:
        batch = present(store.get_batch(batch_id))
        if batch.completed_at is not None:
            return batch
        assert time.monotonic() < deadline, f"batch still open: {batch.remaining} jobs live"
        pipeline.poll(timeout_seconds=60)
        time.sleep(0.2)


def report(stack, key: str) -> bytes:
    return stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()


def _cli(stack, capsys, *command: str) -> str:
    from seedance_local import cli

    capsys.readouterr()
    target = ["--table", stack.table_name, "--endpoint-url", stack.endpoint_url, "--region", stack.region]
    assert cli.main([*command, *target]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_a_csv_and_a_jsonl_batch_are_reported_row_by_row_and_completed_once(pipeline, sim, stack, capsys):
    capture = EventCapture(stack)
    put(stack, "uploads/shoot/a.png", image_bytes(800, 450, "PNG", (10, 80, 160)))
    put(stack, "uploads/shoot/b.png", image_bytes(800, 450, "PNG", (200, 90, 20)))
    table = (
        "id,image,prompt,resolution,duration,takes\r\n"
        "sku-1,a.png,镜头缓慢推进，天色由蓝转橙,480p,5,\r\n"
        'sku-2,b.png,"a cat, then ""a dog"" 🐕",480p,5,2\r\n'
        "sku-3,gone.png,no such image,480p,5,\r\n"
        "sku-4,a.png,bad,4k,5,\r\n"
    ).encode()
    lines = [
        {"id": "j1", "image": "shoot/a.png", "prompt": "Ünïcödé ✓", "resolution": "480p", "model": LITE},
        {"id": "j2", "image": "shoot/b.png", "resolution": "480p", "seed": "twelve"},
    ]
    jsonl = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    csv_event = pipeline.upload("uploads/shoot/catalogue.csv", table)
    outcome = pipeline.submit(csv_event)["outcomes"][0]
    assert outcome["outcome"] == "WAITING" and sim.counters.submit == 0
    assert pipeline.submit(csv_event)["outcomes"][0]["outcome"] == "DUPLICATE"
    pipeline.submit(pipeline.upload("uploads/more.jsonl", jsonl))

    csv_batch = run_batch(pipeline, "uploads/shoot/catalogue.csv")
    jsonl_batch = run_batch(pipeline, "uploads/more.jsonl")
    assert sim.counters.submit == 4, "three takes of two rows and one JSONL row, each sent once"

    rows = list(csv.DictReader(io.StringIO(report(stack, "videos/shoot/catalogue.csv.report.csv").decode())))
    assert [(r["id"], r["take"], r["status"]) for r in rows] == [
        ("sku-1", "1", "SUCCEEDED"),
        ("sku-2", "1", "SUCCEEDED"),
        ("sku-2", "2", "SUCCEEDED"),
        ("sku-3", "1", "REJECTED"),
        ("sku-4", "1", "REJECTED"),
    ]
    assert "row 3 (id sku-3): 'image' names uploads/shoot/gone.png, which does not exist" in rows[3]["reason"]
    assert "row 4 (id sku-4)" in rows[4]["reason"] and "'resolution'" in rows[4]["reason"]
    for row in rows[:3]:
        assert row["task_id"] and int(row["tokens_estimated"]) > 0 and int(row["tokens_billed"]) > 0
        assert float(row["seconds"]) >= 0 and row["video"].endswith(".mp4")
    assert rows[2]["sidecar"] == f"s3://{stack.bucket}/videos/shoot/catalogue.csv/sku-2.take2.json"
    sidecar = json.loads(report(stack, "videos/shoot/catalogue.csv/sku-1.json"))
    assert sidecar["request"]["prompt"] == "镜头缓慢推进，天色由蓝转橙"

    jsonl_lines = [json.loads(x) for x in report(stack, "videos/more.jsonl.report.jsonl").splitlines()]
    assert [(x["id"], x["status"]) for x in jsonl_lines] == [("j1", "SUCCEEDED"), ("j2", "REJECTED")]
    assert "'seed'" in jsonl_lines[1]["reason"]
    assert len(batch_job_ids(jsonl_batch)) == 2 and csv_batch.jobs == 5

    shown = _cli(stack, capsys, "batch", "show", "uploads/shoot/catalogue.csv", "--daily-token-budget", "100000")
    assert (
        "4 rows, 5 videos, 1 row(s) refused when read" in shown and "day(s) at a DailyTokenBudget of 100,000" in shown
    )
    assert "done 3, failed 2, waiting 0, running 0 of 5; finished" in shown
    listed = _cli(stack, capsys, "batch", "list")
    assert "2 batch(es), newest first" in listed

    completed = [e for e in capture.drain() if e["detail-type"] == "Batch Completed"]
    assert sorted(e["detail"]["source"]["key"] for e in completed) == [
        "uploads/more.jsonl",
        "uploads/shoot/catalogue.csv",
    ]
    by_key = {e["detail"]["source"]["key"]: e["detail"] for e in completed}
    assert by_key["uploads/shoot/catalogue.csv"]["counts"] == {"REJECTED": 2, "SUCCEEDED": 3}
    assert by_key["uploads/more.jsonl"]["report"]["jsonl"] == f"s3://{stack.bucket}/videos/more.jsonl.report.jsonl"


def test_a_crash_after_half_the_rows_is_finished_by_the_retry_and_every_row_is_sent_once(
    pipeline, sim, stack, monkeypatch
):
    from seedance_pipeline.logic import batch_intake

    monkeypatch.setattr(batch_intake, "PROGRESS_EVERY", 3)
    put(stack, "uploads/crash/_img/a.png", image_bytes(800, 450, "PNG"))
    table = "image,prompt,resolution\r\n" + "".join(f"_img/a.png,row {n},480p\r\n" for n in range(1, 9))
    event = pipeline.upload("uploads/crash/rows.csv", table.encode())
    store = pipeline.runtime.store
    real_put = store.put_new_jobs
    calls = {"n": 0}

    def dies_on_the_second_chunk(jobs, *, first_write, lease_left):
        calls["n"] += 1
        if calls["n"] == 2:
            real_put(jobs[:1], first_write=first_write, lease_left=lease_left)  # part of a chunk lands, then it dies
            raise RuntimeError("the submit function was killed")
        real_put(jobs, first_write=first_write, lease_left=lease_left)

    monkeypatch.setattr(store, "put_new_jobs", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        pipeline.submit(event)
    monkeypatch.setattr(store, "put_new_jobs", real_put)
    batch_id = _batch_id_of(stack, "uploads/crash/rows.csv")
    assert present(store.get_batch(batch_id)).written == 3
    # The first writer's lease and the grace after it run out (its invocation is dead): the event's retry takes over.
    lease_and_grace_pass(stack, batch_id)
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "WAITING"
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "DUPLICATE"
    batch = run_batch(pipeline, "uploads/crash/rows.csv")
    assert batch.written == 8 and sim.counters.submit == 8
    lines = [json.loads(x) for x in report(stack, "videos/crash/rows.csv.report.jsonl").splitlines()]
    assert [x["status"] for x in lines] == ["SUCCEEDED"] * 8
    assert len({x["task_id"] for x in lines}) == 8


def lease_and_grace_pass(stack, batch_id: str, *, writer_until: float = 0.0) -> None:
    """The batch writer's lease (and by default WRITER_GRACE_SECONDS after it) ran out: its record's lease moved to
    `writer_until` and its due time into the past, as the minutes would."""
    stack.client("dynamodb").update_item(
        TableName=stack.table_name,
        Key={"job_id": {"S": f"#batch#{batch_id}"}},
        UpdateExpression="SET writer_until = :until, next_check_at = :past",
        ExpressionAttributeValues={":until": {"N": repr(writer_until)}, ":past": {"N": "0"}},
    )


def _batch_id_of(stack, key: str) -> str:
    items = stack.client("dynamodb").scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return next(i["batch_id"]["S"] for i in items if i["job_id"]["S"].startswith("#batch#") and i["key"]["S"] == key)


def test_two_batches_and_single_uploads_share_max_in_flight_and_each_row_is_one_task(make_pipeline, sim, stack):
    pipeline = make_pipeline(MAX_IN_FLIGHT="2")
    put(stack, "uploads/race/_img/a.png", image_bytes(800, 450, "PNG"))
    one = "image,prompt,resolution\r\n" + "".join(f"_img/a.png,one {n},480p\r\n" for n in range(1, 6))
    two = "".join(
        json.dumps({"image": "_img/a.png", "prompt": f"two {n}", "resolution": "480p"}) + "\n" for n in range(1, 5)
    )
    pipeline.submit(pipeline.upload("uploads/race/one.csv", one.encode()))
    for n in range(3):
        pipeline.submit(
            pipeline.upload(f"uploads/race/single-{n}.png", image_bytes(800, 450, "PNG"), {"resolution": "480p"})
        )
    pipeline.submit(pipeline.upload("uploads/race/two.jsonl", two.encode()))
    run_batch(pipeline, "uploads/race/one.csv")
    run_batch(pipeline, "uploads/race/two.jsonl")
    singles = pipeline.run_until_terminal(timeout=120)
    assert all(job.status.value == "SUCCEEDED" for job in singles.values())
    assert sim.counters.submit == 12 and sim.counters.peak_running <= 2
    prompts = [body.get("prompt") or body["content"][0]["text"] for body in sim.counters.request_bodies]
    assert [p for p in prompts if p.startswith("one")] == [f"one {n}" for n in range(1, 6)]
    assert [p for p in prompts if p.startswith("two")] == [f"two {n}" for n in range(1, 5)]


def test_a_half_written_batch_whose_retry_came_too_early_is_finished_by_the_poller(
    make_pipeline, sim, stack, monkeypatch
):
    from seedance_pipeline.logic import batch_intake

    monkeypatch.setattr(batch_intake, "PROGRESS_EVERY", 3)
    pipeline = make_pipeline(CLAIM_LEASE_SECONDS="8", PROVIDER_CALL_MARGIN_SECONDS="0.5")
    put(stack, "uploads/early/_img/a.png", image_bytes(800, 450, "PNG"))
    table = "image,prompt,resolution\r\n" + "".join(f"_img/a.png,row {n},480p\r\n" for n in range(1, 9))
    event = pipeline.upload("uploads/early/rows.csv", table.encode())
    store = pipeline.runtime.store
    real_put = store.put_new_jobs
    calls = {"n": 0}

    def dies_on_the_second_chunk(jobs, *, first_write, lease_left):
        calls["n"] += 1
        if calls["n"] == 2:
            real_put(jobs[:1], first_write=first_write, lease_left=lease_left)  # part of a chunk lands, then it dies
            raise RuntimeError("the submit function was killed")
        real_put(jobs, first_write=first_write, lease_left=lease_left)

    monkeypatch.setattr(store, "put_new_jobs", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        pipeline.submit(event)
    monkeypatch.setattr(store, "put_new_jobs", real_put)
    # Lambda's retry comes within the dead writer's lease: not ours to resume. The poller is the net, once the lease
    # and the grace after it (WRITER_GRACE_SECONDS, minutes: passed here by moving the record's times back) ran out.
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "DUPLICATE"
    batch_id = _batch_id_of(stack, "uploads/early/rows.csv")
    lease_and_grace_pass(stack, batch_id, writer_until=time.time() - 1)  # due, but its lease ended a second ago
    pipeline.poll(timeout_seconds=60)
    assert not present(store.get_batch(batch_id)).all_written, "not taken over within the grace"
    lease_and_grace_pass(stack, batch_id)
    batch = run_batch(pipeline, "uploads/early/rows.csv")
    assert batch.written == 8 and batch.all_written and sim.counters.submit == 8
    lines = [json.loads(x) for x in report(stack, "videos/early/rows.csv.report.jsonl").splitlines()]
    assert [x["status"] for x in lines] == ["SUCCEEDED"] * 8
    assert len({x["task_id"] for x in lines}) == 8
    prompts = sorted(body.get("prompt") or body["content"][0]["text"] for body in sim.counters.request_bodies)
    assert prompts == sorted(f"row {n}" for n in range(1, 9)), "every row sent exactly once"


def test_a_batch_completed_event_eventbridge_refused_is_put_once_a_later_poll_can(make_pipeline, sim, stack):
    import uuid

    from seedance_pipeline.models import iso_time

    bus = f"late-bus-{uuid.uuid4().hex[:8]}"  # missing until the batch has completed: PutEvents refuses it
    pipeline = make_pipeline(
        EVENT_BUS_NAME=bus, LEASE_SECONDS="3", CLAIM_LEASE_SECONDS="6", PROVIDER_CALL_MARGIN_SECONDS="0.5"
    )
    put(stack, "uploads/late/a.png", image_bytes(800, 450, "PNG"))
    pipeline.submit(pipeline.upload("uploads/late/rows.csv", b"image,resolution\r\na.png,480p\r\na.png,480p\r\n"))
    batch_id = pipeline.job_ids["uploads/late/rows.csv"]
    completed = run_batch(pipeline, "uploads/late/rows.csv")
    assert completed.publish_until is not None, "claimed, but the event is not out"
    stack.client("events").create_event_bus(Name=bus)
    capture = EventCapture(stack, bus=bus)
    store = pipeline.runtime.store
    deadline = time.monotonic() + 60
    while present(store.get_batch(batch_id)).publish_until is not None:
        assert time.monotonic() < deadline, "the pending publish was never taken over"
        pipeline.poll(timeout_seconds=60)
        time.sleep(0.5)
    pipeline.poll(timeout_seconds=60)
    sent = [e["detail"] for e in capture.drain() if e["detail-type"] == "Batch Completed"]
    assert len(sent) == 1 and sent[0]["batch_id"] == batch_id
    assert sent[0]["timings"]["completed_at"] == iso_time(completed.completed_at)
    assert sent[0]["counts"] == {"SUCCEEDED": 2}
