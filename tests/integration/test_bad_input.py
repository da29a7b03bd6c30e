"""Bad uploads through the real submit handler: each is refused with a recorded reason, before any provider call,
and the handler returns normally so Lambda never retries a poison event.

One moto stack and one warm pipeline serve the whole module; every test uses its own keys, and `sim` resets the
simulator's counters for each test.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from email.header import Header

import pytest
from PIL import Image

from seedance_local.harness import next_sequencer, s3_put_event
from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes
from tests.support.warm_pipeline import module_wide_stack, warm_pipeline  # noqa: F401 - fixtures

MB = 1024 * 1024
ALLOWED_FORMATS = "jpeg, png, webp, bmp, tiff, gif"


# --- helpers -----------------------------------------------------------------------------------------------------


def job_items_for(stack, key: str) -> list[dict]:
    dynamodb = stack.client("dynamodb")
    items = dynamodb.scan(TableName=stack.table_name)["Items"]
    return [item for item in items if item.get("source_key", {}).get("S") == key]


def table_size(stack) -> int:
    return len(stack.client("dynamodb").scan(TableName=stack.table_name)["Items"])


def objects_under(stack, prefix: str) -> list[str]:
    response = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in response.get("Contents", [])]


def assert_rejected(pipeline, sim, stack, result: dict, key: str, code: str, *fragments: str):
    """REJECTED in the handler's answer and in the job record, with a reason that names the problem."""
    [outcome] = result["outcomes"]
    assert outcome["key"] == key
    assert outcome["outcome"] == "REJECTED", outcome
    job = pipeline.jobs()[key]
    assert job.status is JobStatus.REJECTED
    assert job.error is not None
    assert job.error.code == code, job.error
    for fragment in fragments:
        assert fragment in job.error.message, (fragment, job.error.message)
    assert outcome["reason"] == job.error.message
    assert job.task_id is None
    assert job.finished_at is not None
    assert sim.counters.submit == 0  # no paid call was spent on it
    stem = key.removeprefix("uploads/").rsplit(".", 1)[0]
    assert objects_under(stack, f"videos/{stem}.") == []
    return job


def solid_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


# --- the image itself --------------------------------------------------------------------------------------------


def test_a_zero_byte_object_is_rejected_as_empty(pipeline, sim, stack):
    key = "uploads/bad/empty.jpg"
    result = pipeline.submit(pipeline.upload(key, b""))
    assert_rejected(pipeline, sim, stack, result, key, "EMPTY_IMAGE", "empty", "0 bytes")


def test_a_zero_byte_object_is_rejected_even_when_the_event_carries_no_size(pipeline, sim, stack):
    key = "uploads/bad/empty-nosize.jpg"
    event = pipeline.upload(key, b"")
    del event["Records"][0]["s3"]["object"]["size"]
    result = pipeline.submit(event)
    assert_rejected(pipeline, sim, stack, result, key, "EMPTY_IMAGE", "empty")


def test_a_text_file_named_jpg_is_rejected_as_not_an_image(pipeline, sim, stack):
    key = "uploads/bad/notes.jpg"
    result = pipeline.submit(pipeline.upload(key, b"this is a shopping list, not a photo\n" * 20))
    assert_rejected(pipeline, sim, stack, result, key, "NOT_AN_IMAGE", "not a readable image", ALLOWED_FORMATS)


def test_a_truncated_jpeg_is_rejected_as_corrupt(pipeline, sim, stack):
    key = "uploads/bad/truncated.jpg"
    whole = image_bytes(800, 600)
    result = pipeline.submit(pipeline.upload(key, whole[: len(whole) // 2]))
    assert_rejected(pipeline, sim, stack, result, key, "CORRUPT_IMAGE", "truncated or corrupt", "jpeg")


# Larger than 6000 px is scaled down, not refused (tests/integration/test_photos_as_uploaded.py).
@pytest.mark.parametrize(("width", "height"), [(200, 200), (299, 600), (600, 299)], ids=["200", "299w", "299h"])
def test_an_image_outside_the_size_limits_is_rejected_naming_its_size_and_the_limits(
    pipeline, sim, stack, width, height
):
    key = f"uploads/bad/size-{width}x{height}.png"
    result = pipeline.submit(pipeline.upload(key, solid_png(width, height)))
    assert_rejected(
        pipeline, sim, stack, result, key, "IMAGE_DIMENSIONS", f"{width}x{height}", "between 300 and 6000 px"
    )


@pytest.mark.parametrize(("width", "height"), [(1500, 500), (400, 1200)], ids=["3:1", "1:3"])
def test_an_image_with_an_extreme_aspect_ratio_is_rejected(pipeline, sim, stack, width, height):
    key = f"uploads/bad/aspect-{width}x{height}.jpg"
    result = pipeline.submit(pipeline.upload(key, image_bytes(width, height)))
    assert_rejected(pipeline, sim, stack, result, key, "IMAGE_ASPECT_RATIO", f"{width}x{height}", "between 0.4 and 2.5")


def test_an_object_announced_over_100_mb_is_refused_from_the_events_size(pipeline, sim, stack):
    """The object is a small valid image: only the event's `size` can have caused the refusal. (Over the provider's
    30 MB and up to 100 MB an upload is read and scaled down: rules/image_rules.py.)"""
    key = "uploads/bad/announced-huge.jpg"
    event = pipeline.upload(key, image_bytes())
    event["Records"][0]["s3"]["object"]["size"] = 101 * MB
    result = pipeline.submit(event)
    assert_rejected(pipeline, sim, stack, result, key, "IMAGE_TOO_LARGE", "101.0 MB", "uploads up to 100 MB")


def test_an_object_over_100_mb_is_refused_from_its_real_size_when_the_event_has_none(pipeline, sim, stack):
    key = "uploads/bad/really-huge.jpg"
    data = image_bytes()
    event = pipeline.upload(key, data + b"\0" * (100 * MB + 1 - len(data)))  # one byte over the limit
    del event["Records"][0]["s3"]["object"]["size"]
    result = pipeline.submit(event)
    assert_rejected(pipeline, sim, stack, result, key, "IMAGE_TOO_LARGE", "100.0 MB", "uploads up to 100 MB")


def test_an_ico_file_is_rejected_as_an_unsupported_format(pipeline, sim, stack):
    key = "uploads/bad/favicon.png"
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 20, 30)).save(buffer, format="ICO", sizes=[(256, 256)])
    result = pipeline.submit(pipeline.upload(key, buffer.getvalue()))
    assert_rejected(pipeline, sim, stack, result, key, "UNSUPPORTED_FORMAT", "ICO", "not supported", ALLOWED_FORMATS)


def test_a_pdf_is_rejected_as_not_an_image(pipeline, sim, stack):
    key = "uploads/bad/scan.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (600, 600), (200, 200, 200)).save(buffer, format="PDF")
    assert buffer.getvalue().startswith(b"%PDF")
    result = pipeline.submit(pipeline.upload(key, buffer.getvalue()))
    assert_rejected(pipeline, sim, stack, result, key, "NOT_AN_IMAGE", "not a readable image", ALLOWED_FORMATS)


# --- keys that are not ours, and keys that are ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("videos/bad/clip.jpg", "output prefix"),
        ("videos/bad/clip.mp4", "output prefix"),
        ("elsewhere/photo.jpg", "outside the input prefix"),
        ("photo.jpg", "outside the input prefix"),
        ("uploadsX/photo.jpg", "outside the input prefix"),
        ("uploads/folder/", "folder placeholder"),
        ("uploads/", "folder placeholder"),
    ],
)
def test_objects_outside_the_input_prefix_or_folder_placeholders_are_ignored_without_a_job(
    pipeline, sim, stack, key, reason
):
    data = b"" if key.endswith("/") else image_bytes()
    before = table_size(stack)

    result = pipeline.submit(pipeline.upload(key, data))

    [outcome] = result["outcomes"]
    assert outcome["outcome"] == "IGNORED"
    assert reason in outcome["reason"]
    assert outcome["job_id"] is None
    assert job_items_for(stack, key) == []
    assert table_size(stack) == before
    assert sim.counters.submit == 0


def test_keys_with_spaces_plus_percent_and_non_ascii_are_processed_to_the_same_characters(pipeline, sim, stack):
    keys = {
        "uploads/été 2026/a+b 100%.jpg": "videos/été 2026/a+b 100%.jpg",
        "uploads/literal %41%20 escapes.jpg": "videos/literal %41%20 escapes.jpg",
        "uploads/日本語/写真 1+1=2.jpeg": "videos/日本語/写真 1+1=2.jpeg",
    }
    data = image_bytes()
    for key in keys:
        event = pipeline.upload(key, data, {"resolution": "480p"})
        assert event["Records"][0]["s3"]["object"]["key"] != key  # sent URL-encoded, as S3 does
        [outcome] = pipeline.submit(event)["outcomes"]
        assert outcome == {**outcome, "key": key, "outcome": "SUBMITTED"}

    jobs = pipeline.run_until_terminal(timeout=60)

    s3 = stack.client("s3")
    for key, output_base in keys.items():
        job = jobs[key]
        video_key = f"{output_base}.{job.job_id[:12]}.mp4"
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert job.source_key == key
        assert job.outputs.video_key == video_key
        assert s3.get_object(Bucket=stack.bucket, Key=video_key)["Body"].read(8)[4:8] == b"ftyp"
        sidecar = json.loads(s3.get_object(Bucket=stack.bucket, Key=job.outputs.sidecar_key)["Body"].read())
        assert sidecar["source"]["key"] == key
        assert job.outputs.sidecar_key == f"{output_base}.json"
    assert sim.counters.submit == len(keys)


# --- metadata ----------------------------------------------------------------------------------------------------

I2V = "doubao-seedance-1-0-pro-250528, doubao-seedance-1-0-lite-i2v-250428"


@pytest.mark.parametrize(
    ("metadata", "fragments"),
    [
        ({"resolution": "4k"}, ["'resolution'", "'4k'", "480p, 720p, 1080p"]),
        ({"resolution": "720P"}, ["'resolution'", "480p, 720p, 1080p"]),
        ({"ratio": "5:4"}, ["'ratio'", "'5:4'", "21:9, 16:9, 4:3, 1:1, 3:4, 9:16, 9:21, keep_ratio, adaptive"]),
        ({"duration": "7"}, ["'duration'", "'7'", "5 or 10"]),
        ({"duration": "five"}, ["'duration'", "5 or 10"]),
        ({"seed": "-1"}, ["'seed'", "'-1'", "0 to 2147483647"]),
        ({"seed": "2147483648"}, ["'seed'", "'2147483648'", "0 to 2147483647"]),
        ({"seed": "1.5"}, ["'seed'", "0 to 2147483647"]),
        ({"model": "doubao-seedance-9-turbo"}, ["'model'", "doubao-seedance-9-turbo", I2V]),
        ({"model": "doubao-seedance-1-0-lite-t2v-250428"}, ["'model'", "lite-t2v", "image-to-video", I2V]),
        ({"watermark": "maybe"}, ["'watermark'", "'maybe'", "true or false"]),
        ({"return-last-frame": "2"}, ["'return-last-frame'", "true or false"]),
    ],
    ids=[
        "resolution-4k",
        "resolution-case",
        "ratio",
        "duration-7",
        "duration-word",
        "seed-negative",
        "seed-too-big",
        "seed-fraction",
        "model-unknown",
        "model-text-only",
        "watermark",
        "return-last-frame",
    ],
)
def test_invalid_metadata_is_rejected_naming_the_field_and_the_allowed_values(
    pipeline, sim, stack, request, metadata, fragments
):
    key = f"uploads/bad/meta-{request.node.callspec.id}.jpg"
    result = pipeline.submit(pipeline.upload(key, image_bytes(), metadata))
    assert_rejected(pipeline, sim, stack, result, key, "INVALID_METADATA", *fragments)


def test_a_prompt_over_800_characters_is_cut_to_800_and_noted(pipeline, sim):
    prompt = "".join(f"shot{n:03d}," for n in range(120))[:900]  # no edge whitespace to strip
    assert len(prompt) == 900
    key = "uploads/meta/long-prompt.jpg"

    [outcome] = pipeline.submit(pipeline.upload(key, image_bytes(), {"prompt": prompt}))["outcomes"]

    assert outcome["outcome"] == "SUBMITTED"
    [body] = sim.counters.request_bodies
    assert body["prompt"] == prompt[:800]
    assert len(body["prompt"]) == 800
    job = pipeline.jobs()[key]
    assert job.request.prompt == prompt[:800]
    assert job.request.prompt_truncated
    assert any("800" in note and "prompt" in note for note in job.notes), job.notes


CAT = "一只猫在雪中奔跑"


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        (Header(CAT, "utf-8").encode(), CAT),
        (Header("Un chat qui court dans la neige, été", "utf-8").encode(), "Un chat qui court dans la neige, été"),
        (urllib.parse.quote(CAT), CAT),
        (urllib.parse.quote("café au lait, 50% foam"), "café au lait, 50% foam"),
        ("a 100% cinematic pan", "a 100% cinematic pan"),
    ],
    ids=["rfc2047-chinese", "rfc2047-latin", "percent-chinese", "percent-latin", "plain-with-percent"],
)
def test_an_encoded_prompt_reaches_the_provider_decoded(pipeline, sim, request, sent, received):
    assert sent.isascii()  # what S3 metadata can carry
    key = f"uploads/meta/prompt-{request.node.callspec.id}.jpg"

    [outcome] = pipeline.submit(pipeline.upload(key, image_bytes(), {"prompt": sent}))["outcomes"]

    assert outcome["outcome"] == "SUBMITTED", outcome
    [body] = sim.counters.request_bodies
    assert body["prompt"] == received
    assert pipeline.jobs()[key].request.prompt == received


# --- events that point nowhere, or are not ours ------------------------------------------------------------------


def test_a_poison_event_for_a_missing_object_returns_normally_and_rejects_the_job(pipeline, sim, stack):
    key = "uploads/bad/never-uploaded.jpg"
    event = s3_put_event(stack.bucket, key, size=123_456, etag="0" * 32, sequencer=next_sequencer())

    result = pipeline.submit(event)

    assert_rejected(pipeline, sim, stack, result, key, "OBJECT_GONE", key, "no longer exists")
    # A second delivery of the same poison event is a duplicate, not a second job or a crash.
    assert pipeline.submit(event)["outcomes"][0]["outcome"] == "DUPLICATE"
    assert len(job_items_for(stack, key)) == 1


def test_an_event_for_an_object_deleted_since_is_rejected_as_gone(pipeline, sim, stack):
    key = "uploads/bad/deleted.jpg"
    event = pipeline.upload(key, image_bytes())
    stack.client("s3").delete_object(Bucket=stack.bucket, Key=key)

    result = pipeline.submit(event)

    assert_rejected(pipeline, sim, stack, result, key, "OBJECT_GONE", "no longer exists")


SQS_EVENT = {
    "Records": [
        {
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
            "body": '{"hello": "world"}',
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:my-queue",
            "awsRegion": "us-east-1",
        }
    ]
}
SNS_EVENT = {
    "Records": [
        {
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:topic:sub",
            "EventSource": "aws:sns",
            "Sns": {"Type": "Notification", "MessageId": "95df01b4", "Message": "{}", "Subject": None},
        }
    ]
}


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"hello": "world"},
        {"httpMethod": "POST", "path": "/upload", "body": "{}"},
        {
            "version": "0",
            "id": "53dc4d37",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        },
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00.000Z", "Bucket": "b"},
        {"Records": []},
    ],
    ids=["empty", "arbitrary", "api-gateway", "schedule", "s3-test-event", "no-records"],
)
def test_an_event_that_is_neither_s3_nor_eventbridge_makes_no_job_and_no_exception(pipeline, sim, stack, event):
    before = table_size(stack)

    result = pipeline.submit(event)

    assert result == {"outcomes": []}
    assert table_size(stack) == before
    assert sim.counters.submit == 0


@pytest.mark.parametrize("event", [SQS_EVENT, SNS_EVENT], ids=["sqs", "sns"])
def test_an_sqs_or_sns_envelope_makes_no_job_and_no_exception(pipeline, sim, stack, event):
    before = table_size(stack)

    result = pipeline.submit(event)

    assert result == {"outcomes": []}
    assert table_size(stack) == before
    assert sim.counters.submit == 0
