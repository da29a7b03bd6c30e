"""An image uploaded with S3 metadata `takes`, end to end over moto and the simulator on both dialects: one upload,
N videos with N seeds, sidecars named per take, a report beside them and one `Batch Completed`."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.conftest import DIALECTS
from tests.support.event_capture import EventCapture
from tests.support.expect import present
from tests.support.images import image_bytes

pytestmark = pytest.mark.parametrize("dialect", DIALECTS, indirect=True)


def run_batch(pipeline, key: str, *, timeout: float = 120.0) -> Any:
    batch_id = pipeline.job_ids.pop(key)  # the upload is a batch: the harness must not wait for a job of its own
    store = pipeline.runtime.store
    deadline = time.monotonic() + timeout
    while True:
        batch = present(store.get_batch(batch_id))
        if batch.completed_at is not None:
            return batch
        assert time.monotonic() < deadline, f"batch still open: {batch.remaining} jobs live"
        pipeline.poll(timeout_seconds=60)
        time.sleep(0.2)


def read(stack, key: str) -> bytes:
    return stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()


def test_an_image_uploaded_with_metadata_takes_2_makes_two_videos_named_per_take_and_one_report(pipeline, sim, stack):
    capture = EventCapture(stack)
    key = "uploads/takes/kitten.png"
    event = pipeline.upload(
        key, image_bytes(800, 450, "PNG", (30, 90, 150)), {"takes": "2", "seed": "41", "resolution": "480p"}
    )
    outcome = pipeline.submit(event)["outcomes"][0]
    assert outcome["outcome"] == "WAITING" and "2 videos queued" in outcome["reason"]
    assert sim.counters.submit == 0, "the submit function only writes the takes"
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "DUPLICATE"

    batch = run_batch(pipeline, key)
    assert batch.jobs == 2 and sim.counters.submit == 2, "each take sent once"

    lines = [json.loads(x) for x in read(stack, "videos/takes/kitten.png.report.jsonl").splitlines()]
    assert [(x["id"], x["take"], x["status"]) for x in lines] == [
        ("kitten", 1, "SUCCEEDED"),
        ("kitten", 2, "SUCCEEDED"),
    ]
    seeds = []
    for take, line in enumerate(lines, start=1):
        assert line["sidecar"] == f"s3://{stack.bucket}/videos/takes/kitten.png/kitten.take{take}.json"
        video_key = line["video"].removeprefix(f"s3://{stack.bucket}/")
        assert video_key.startswith(f"videos/takes/kitten.png/kitten.take{take}.") and video_key.endswith(".mp4")
        assert read(stack, video_key)[4:8] == b"ftyp"
        sidecar = json.loads(read(stack, f"videos/takes/kitten.png/kitten.take{take}.json"))
        assert sidecar["request"]["resolution"] == "480p"
        seeds.append(sidecar["request"]["seed"])
    assert seeds == [41, 42]

    completed = [e for e in capture.drain() if e["detail-type"] == "Batch Completed"]
    assert len(completed) == 1 and completed[0]["detail"]["source"]["key"] == key
    assert completed[0]["detail"]["counts"] == {"SUCCEEDED": 2}


def test_an_image_with_a_bad_takes_value_is_rejected_naming_it(pipeline, sim, stack):
    key = "uploads/takes/bad.png"
    outcome = pipeline.submit(pipeline.upload(key, image_bytes(800, 450, "PNG"), {"takes": "9"}))["outcomes"][0]
    assert outcome["outcome"] == "REJECTED" and "metadata 'takes' is '9'" in outcome["reason"]
    assert sim.counters.submit == 0


def test_takes_of_an_image_overwritten_before_they_are_sent_are_rejected_naming_it_none_made(pipeline, sim, stack):
    key = "uploads/takes/replaced.png"
    event = pipeline.upload(key, image_bytes(800, 450, "PNG", (30, 90, 150)), {"takes": "2"})
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "WAITING"
    # Overwritten (this stack's bucket keeps no versions) before a poll sends either take; its own event is not
    # handled here: only the first upload's takes are at stake.
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=image_bytes(800, 450, "PNG", (250, 250, 250)))

    batch = run_batch(pipeline, key)
    assert sim.counters.submit == 0, "no take is made from a picture the upload did not announce"
    lines = [json.loads(x) for x in read(stack, "videos/takes/replaced.png.report.jsonl").splitlines()]
    assert [(x["take"], x["status"]) for x in lines] == [(1, "REJECTED"), (2, "REJECTED")]
    assert all(key in x["reason"] and "replaced" in x["reason"] for x in lines), lines
    assert batch.completed_at is not None
