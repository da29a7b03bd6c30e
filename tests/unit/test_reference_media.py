"""Reference videos and audio, the 2.5 task types, `duration: -1` and the output format, from a manifest to the body."""

import json
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload
from seedance_pipeline.rules.reference_media import MAX_AUDIO_BYTES, MAX_VIDEO_BYTES, MediaKind, sniff
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_2_5 = "dreamina-seedance-2-5-260628"
PRO = "doubao-seedance-1-0-pro-250528"
ARK: dict[str, Any] = {"provider_api": "ark", "api_base_url": "https://ark.ap-southeast.bytepluses.com/api/v3"}


def mp4(brand: bytes = b"isom", size: int = 4096) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x02\x00isomiso2" + b"\x00" * (size - 24)


def wav(size: int = 4096) -> bytes:
    return b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + b"\x00" * (size - 16)


def mp3(size: int = 4096) -> bytes:
    return b"ID3\x04\x00\x00" + b"\x00" * (size - 6)


class Sized(bytes):
    """Bytes whose reported size is larger than what is stored: an oversized object without 50 MB in memory."""


def submit(document: dict, *, files: dict[str, bytes] | None = None, images: int = 3, **settings):
    runtime, store, storage, provider = make_runtime(**{**ARK, **settings})
    for n in range(images):
        storage.add(BUCKET, f"uploads/clips/_f/{n}.png", image_bytes(fmt="PNG"))
    for name, data in (files or {}).items():
        storage.add(BUCKET, f"uploads/clips/_m/{name}", data)
    storage.add(BUCKET, "uploads/clips/job.json", json.dumps(document).encode())
    outcome = accept_upload(Upload(bucket=BUCKET, key="uploads/clips/job.json", sequencer="01"), runtime, owner="o")
    return outcome, store.get(present(outcome.job_id)), provider, storage


def test_reference_images_a_video_and_audio_go_to_ark_as_content_items_with_their_roles():
    outcome, job, provider, storage = submit(
        {
            "reference_images": ["_f/0.png", "_f/1.png"],
            "reference_videos": ["_m/move.mp4"],
            "reference_audio": ["_m/beat.mp3", "_m/voice.wav"],
            "model": SEEDANCE_2,
            "duration": -1,
        },
        files={"move.mp4": mp4(), "beat.mp3": mp3(), "voice.wav": wav()},
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    [body] = provider.submissions
    items = [(item["type"], item.get("role")) for item in body["content"]]
    assert items == [
        ("text", None),
        ("image_url", "reference_image"),
        ("image_url", "reference_image"),
        ("video_url", "reference_video"),
        ("audio_url", "reference_audio"),
        ("audio_url", "reference_audio"),
    ]
    assert body["content"][3]["video_url"]["url"].split("?")[0].endswith("_m/move.mp4")
    assert body["duration"] == -1
    assert "omni_reference_task_type" not in body and "output_format" not in body and "draft" not in body
    # The video and audio are checked from their first bytes: one ranged read each, never the whole file.
    assert storage.head_reads == 3


def test_a_video_alone_is_a_reference_request_with_no_image():
    outcome, _, provider, _ = submit(
        {"reference_videos": ["_m/move.mov"], "model": SEEDANCE_2}, files={"move.mov": mp4(b"qt  ")}
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    assert [item["type"] for item in provider.submissions[0]["content"]] == ["text", "video_url"]


def test_audio_goes_as_a_data_url_where_the_stack_sends_data_urls_and_videos_never_do():
    outcome, _, provider, _ = submit(
        {"reference_videos": ["_m/move.mp4"], "reference_audio": ["_m/beat.wav"], "model": SEEDANCE_2},
        files={"move.mp4": mp4(), "beat.wav": wav()},
        image_delivery="data-url",
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    video, audio = provider.submissions[0]["content"][1:]
    assert video["video_url"]["url"].startswith("https://")
    assert audio["audio_url"]["url"].startswith("data:audio/wav;base64,UklGR")


def test_the_2_5_task_type_and_a_mov_output_are_sent_and_the_video_is_named_mov():
    outcome, job, provider, _ = submit(
        {"reference_videos": ["_m/a.mp4"], "task_type": "edit", "output_format": "mov", "model": SEEDANCE_2_5},
        files={"a.mp4": mp4()},
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    [body] = provider.submissions
    assert body["omni_reference_task_type"] == "edit"
    assert body["output_format"] == "mov"
    assert job.request.output_format == "mov"


@pytest.mark.parametrize(
    ("document", "files", "fragments"),
    [
        (
            {"reference_images": ["_f/0.png"], "reference_videos": ["_m/a.mp4"], "model": SEEDANCE_2},
            {"a.mp4": wav()},
            ["'reference_videos[0]'", "must be MP4 or MOV video", "WAV audio"],
        ),
        (
            {"reference_images": ["_f/0.png"], "reference_audio": ["_m/a.mp3"], "model": SEEDANCE_2},
            {"a.mp3": image_bytes(fmt="PNG")},
            ["'reference_audio[0]'", "MP3 or WAV audio", "a PNG image"],
        ),
        (
            {"reference_images": ["_f/0.png"], "reference_audio": ["_m/a.m4a"], "model": SEEDANCE_2},
            {"a.m4a": mp4(b"M4A ")},
            ["MP3 or WAV audio", "brand 'M4A'"],
        ),
        (
            {"reference_videos": [f"_m/{n}.mp4" for n in range(4)], "model": SEEDANCE_2},
            {f"{n}.mp4": mp4() for n in range(4)},
            [SEEDANCE_2, "at most 3 reference videos, not 4"],
        ),
        (
            {
                "reference_images": ["_f/0.png"],
                "reference_audio": [f"_m/{n}.mp3" for n in range(4)],
                "model": SEEDANCE_2,
            },
            {f"{n}.mp3": mp3() for n in range(4)},
            ["at most 3 reference audio clips, not 4"],
        ),
        ({"reference_audio": ["_m/a.mp3"], "model": SEEDANCE_2}, {"a.mp3": mp3()}, ["audio alone is never sent"]),
        (
            {"reference_images": ["_f/0.png"], "reference_videos": ["_m/gone.mp4"], "model": SEEDANCE_2},
            {},
            ["'reference_videos[0]'", "_m/gone.mp4", "does not exist"],
        ),
        (
            {"reference_videos": ["_m/a.mp4"], "model": PRO},
            {"a.mp4": mp4()},
            [PRO, "not reference images"],
        ),
        (
            {"reference_videos": ["_m/a.mp4"], "task_type": "edit", "model": SEEDANCE_2},
            {"a.mp4": mp4()},
            [SEEDANCE_2, "no task type 'edit'", "offers: none"],
        ),
        (
            {"reference_images": ["_f/0.png"], "task_type": "extend", "model": SEEDANCE_2_5},
            {},
            ["task type 'extend' needs at least one reference video"],
        ),
        (
            {"reference_images": ["_f/0.png"], "output_format": "mov", "model": SEEDANCE_2},
            {},
            [SEEDANCE_2, "output formats mp4, not mov"],
        ),
        (
            {"first_frame": "_f/0.png", "duration": -1},
            {},
            ["'duration' is '-1'; allowed: 2-12 (seconds)", PRO],
        ),
        (
            {"first_frame": "_f/0.png", "reference_videos": ["_m/a.mp4"], "model": SEEDANCE_2},
            {"a.mp4": mp4()},
            ["not both"],
        ),
        (
            {"reference_images": ["_f/0.png"], "reference_videos": ["../../x.mp4"], "model": SEEDANCE_2},
            {},
            ["'reference_videos[0]'", "must name a file under"],
        ),
    ],
    ids=[
        "wav-named-mp4",
        "png-named-mp3",
        "m4a-audio",
        "four-videos-on-2-0",
        "four-audio-on-2-0",
        "audio-alone",
        "missing-key",
        "video-on-a-model-without-references",
        "task-type-on-2-0",
        "extend-without-video",
        "mov-on-2-0",
        "model-picks-on-pro",
        "frame-and-video",
        "outside-the-prefix",
    ],
)
def test_a_bad_reference_input_is_rejected_before_any_provider_call(document, files, fragments):
    outcome, job, provider, _ = submit(document, files=files)
    assert outcome.outcome == "REJECTED"
    assert job.error.code == "INVALID_MANIFEST"
    for fragment in fragments:
        assert fragment in job.error.message
    assert provider.submissions == []


@pytest.mark.parametrize(
    ("kind", "name", "limit"), [("video", "a.mp4", MAX_VIDEO_BYTES), ("audio", "a.wav", MAX_AUDIO_BYTES)]
)
def test_an_oversized_reference_is_refused_from_its_size_alone(kind, name, limit, monkeypatch):
    runtime, store, storage, provider = make_runtime(**ARK)
    storage.add(BUCKET, "uploads/clips/_f/0.png", image_bytes(fmt="PNG"))
    storage.add(BUCKET, f"uploads/clips/_m/{name}", mp4() if kind == "video" else wav())
    original = storage.read_head
    monkeypatch.setattr(storage, "read_head", lambda b, k, *, length: (limit + 1, original(b, k, length=length)[1]))
    field = "reference_videos" if kind == "video" else "reference_audio"
    document = {"reference_images": ["_f/0.png"], field: [f"_m/{name}"], "model": SEEDANCE_2}
    storage.add(BUCKET, "uploads/clips/job.json", json.dumps(document).encode())
    outcome = accept_upload(Upload(bucket=BUCKET, key="uploads/clips/job.json", sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "REJECTED"
    assert f"a reference {kind} may be at most {limit // 1024 // 1024} MB" in present(outcome.reason)
    assert provider.submissions == []


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"reference_videos": ["_m/a.mp4"], "model": SEEDANCE_2}, "not reference videos"),
        ({"reference_images": ["_f/0.png"], "reference_audio": ["_m/a.mp3"], "model": SEEDANCE_2}, "reference audio"),
        ({"reference_images": ["_f/0.png"], "output_format": "mov", "model": SEEDANCE_2_5}, "output format mov"),
    ],
    ids=["video", "audio", "mov"],
)
def test_the_unified_dialect_says_what_it_cannot_carry(document, fragment):
    outcome, job, provider, _ = submit(
        document, files={"a.mp4": mp4(), "a.mp3": mp3()}, provider_api="unified", api_base_url="https://gw.example.com"
    )
    assert outcome.outcome == "REJECTED"
    assert "unified gateway format" in job.error.message and fragment in job.error.message
    assert provider.submissions == []


def test_reference_images_still_go_to_the_unified_gateway_without_the_native_only_fields():
    outcome, _, provider, _ = submit(
        {"reference_images": ["_f/0.png", "_f/1.png"], "model": SEEDANCE_2, "duration": 10},
        provider_api="unified",
        api_base_url="https://gw.example.com",
    )
    assert outcome.outcome == "SUBMITTED", outcome.reason
    [body] = provider.submissions
    assert not {"task_type", "output_format", "draft", "content"} & set(body)


@given(st.binary(max_size=64))
def test_sniffing_never_calls_an_image_or_random_bytes_a_video_unless_it_has_a_media_signature(head):
    found = sniff(head)
    if found is not None and found.kind is MediaKind.VIDEO:
        assert head[4:8] == b"ftyp"
    if found is not None and found.kind is MediaKind.AUDIO:
        assert head[:4] == b"RIFF" or head[:3] == b"ID3" or head[0] == 0xFF


@pytest.mark.parametrize("name", ["uploads/clips/move.mp4", "uploads/beat.MP3", "uploads/a/b/voice.wav"])
def test_a_reference_video_or_audio_uploaded_on_its_own_is_not_a_job(name):
    runtime, store, storage, provider = make_runtime(**ARK)
    storage.add(BUCKET, name, mp4())
    outcome = accept_upload(Upload(bucket=BUCKET, key=name, sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "IGNORED"
    assert "used only when a manifest names it" in present(outcome.reason)
    assert storage.reads == 0 and provider.submissions == []


def test_a_mov_output_is_delivered_under_a_mov_name_that_the_sidecar_names():
    runtime, store, storage, provider = make_runtime(**ARK)
    storage.add(BUCKET, "uploads/clips/_f/0.png", image_bytes(fmt="PNG"))
    document = {"reference_images": ["_f/0.png"], "output_format": "mov", "model": SEEDANCE_2_5}
    storage.add(BUCKET, "uploads/clips/job.json", json.dumps(document).encode())
    outcome = accept_upload(Upload(bucket=BUCKET, key="uploads/clips/job.json", sequencer="01"), runtime, owner="o")
    assert outcome.outcome == "SUBMITTED", outcome.reason
    for _ in range(10):
        runtime.clock.advance(30)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    sidecar = json.loads(storage.uploads[(BUCKET, "videos/clips/job.json.json")])
    assert sidecar["outputs"]["video"] == f"videos/clips/job.json.{present(outcome.job_id)[:12]}.mov"
    assert sidecar["outputs"]["video_format"] == "mov"
    assert (BUCKET, sidecar["outputs"]["video"]) in storage.uploads
