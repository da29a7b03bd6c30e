"""Turn trigger events (S3 notifications, EventBridge "Object Created") into Upload models."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event
from pydantic import BaseModel

from seedance_pipeline.models import Upload


class ParsedEvent(BaseModel):
    uploads: list[Upload]
    # (description, reason) of records that are not object creations, kept for the log.
    ignored: list[tuple[str, str]]


def parse_trigger_event(event: dict[str, Any]) -> ParsedEvent:
    if isinstance(event.get("Records"), list):
        return _parse_s3_notification(event)
    if event.get("source") == "aws.s3" and "detail" in event:
        return _parse_eventbridge(event)
    if event.get("Event") == "s3:TestEvent":
        return ParsedEvent(uploads=[], ignored=[("s3:TestEvent", "S3 sends this once when notifications are set up")])
    return ParsedEvent(uploads=[], ignored=[("event", "neither an S3 notification nor an EventBridge S3 event")])


def _parse_s3_notification(event: dict[str, Any]) -> ParsedEvent:
    uploads: list[Upload] = []
    ignored: list[tuple[str, str]] = []
    s3_records = []
    for raw_record in event["Records"]:
        if isinstance(raw_record, dict) and raw_record.get("eventSource") == "aws:s3" and "s3" in raw_record:
            s3_records.append(raw_record)
        else:
            source = raw_record.get("eventSource", "record") if isinstance(raw_record, dict) else "record"
            ignored.append((str(source), "not an S3 record (SQS/SNS envelopes are not unwrapped)"))
    for record in S3Event({"Records": s3_records}).records:
        name = record.event_name or ""
        if not name.startswith("ObjectCreated:"):
            ignored.append((name or "record", "not an ObjectCreated event"))
            continue
        obj = record.s3.get_object
        raw = record.raw_event["s3"]["object"]
        uploads.append(
            Upload(
                bucket=record.s3.bucket.name,
                # S3 URL-encodes keys in notifications, with '+' for spaces.
                key=unquote_plus(raw["key"]),
                version_id=raw.get("versionId") or None,
                etag=raw.get("eTag") or None,
                sequencer=raw.get("sequencer") or None,
                size=obj.size if "size" in raw else None,
                event_time=record.event_time,
            )
        )
    return ParsedEvent(uploads=uploads, ignored=ignored)


def _parse_eventbridge(event: dict[str, Any]) -> ParsedEvent:
    wrapped = EventBridgeEvent(event)
    if wrapped.detail_type != "Object Created":
        return ParsedEvent(uploads=[], ignored=[(wrapped.detail_type, "not an Object Created event")])
    detail = wrapped.detail
    obj = detail.get("object", {})
    upload = Upload(
        bucket=detail["bucket"]["name"],
        # EventBridge carries the key URL-encoded as well (spaces as '+').
        key=unquote_plus(obj["key"]),
        version_id=obj.get("version-id") or None,
        etag=obj.get("etag") or None,
        sequencer=obj.get("sequencer") or None,
        size=obj.get("size"),
        event_time=wrapped.time,
    )
    return ParsedEvent(uploads=[upload], ignored=[])
