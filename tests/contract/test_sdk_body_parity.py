"""The pipeline's Ark create body, built by its own code (resolve_request, then provider_body_for), for every
catalogue model and image mode, compared field by field with what the vendor's SDK puts on the wire for the same
arguments: every field the pipeline sends must be an argument of `tasks.create`, every content item must have the
keys of the SDK's item type, and the SDK must serialise each value exactly as the pipeline does (the SDK's nulls
for arguments left unset aside). The SDK's request is captured by a local HTTP server, so nothing leaves the
machine (issue 18)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, get_type_hints

import httpx
import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime.types.content_generation import create_task_content_param as items

from seedance_pipeline.rules.model_catalogue import BUILT_IN_MODELS, ImageMode
from seedance_pipeline.rules.video_request import provider_body_for, resolve_request
from seedance_pipeline.settings import Settings

SETTINGS = Settings(
    jobs_table_name="t",
    provider_api="ark",
    ratio="16:9",
    callback_url="https://callbacks.example.com/hook",
    callback_signing_secret_id="callback-secret",
)
JOB_CALLBACK = "https://callbacks.example.com/hook?job=0123456789abcdef&token=not-a-real-token"
IMAGE = "https://images.example.com/upload-{}.png"
# The SDK's own type of each content item kind, and of the `{url}` object inside it.
ITEM_TYPES: dict[str, Any] = {
    "text": items.CreateTaskContentTextParam,
    "image_url": items.CreateTaskContentImageParam,
    "video_url": items.CreateTaskContentVideoParam,
    "audio_url": items.CreateTaskContentAudioParam,
    "draft_task": items.CreateTaskContentDraftTaskParam,
}
MEDIA_TYPES: dict[str, Any] = {
    "image_url": items.CreateTaskContentImageDataParam,
    "video_url": items.CreateTaskContentVideoDataParam,
    "audio_url": items.CreateTaskContentAudioDataParam,
    "draft_task": items.CreateTaskContentDraftTaskDataParam,
}


class _Capture(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        answer = b'{"id": "cgt-20260101000000-abcde"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sdk_wire() -> Iterator[tuple[Ark, list[dict[str, Any]]]]:
    """The SDK pointed at a loopback server that records each create body it receives."""
    bodies: list[dict[str, Any]] = []
    handler = type("Capture", (_Capture,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    http = httpx.Client(trust_env=False, timeout=10)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    yield Ark(base_url=base_url, api_key="capture-key", max_retries=0, http_client=http), bodies
    http.close()
    server.shutdown()
    server.server_close()


def _cases() -> list[tuple[str, ImageMode, int, dict[str, str]]]:
    """(model id, mode, image count, upload metadata) for whatever the catalogue holds."""
    cases: list[tuple[str, ImageMode, int, dict[str, str]]] = []
    for spec in BUILT_IN_MODELS:
        if spec.text_only:
            continue
        for name in dict.fromkeys(n for n in (spec.id, getattr(spec, "byteplus_id", None)) if n):
            for mode in sorted(spec.modes):
                counts = {ImageMode.FIRST_FRAME: [1], ImageMode.FIRST_AND_LAST: [2]}.get(
                    mode, sorted({1, spec.max_reference_images})
                )
                durations = spec.durations_for("ark")
                resolution = next(r for r in spec.resolutions_for(mode) if r != "4k")
                for count in counts:
                    metadata = {"model": name, "resolution": resolution, "duration": str(min(durations))}
                    cases.append((name, mode, count, metadata))
                    seeded = {**metadata, "seed": "-1", "watermark": "true", "return-last-frame": "true"}
                    cases.append((name, mode, count, seeded))
    return cases


@pytest.mark.parametrize(("model", "mode", "count", "metadata"), _cases(), ids=str)
def test_the_pipeline_body_is_what_the_vendor_sdk_sends_for_the_same_arguments(
    sdk_wire: tuple[Ark, list[dict[str, Any]]], model: str, mode: ImageMode, count: int, metadata: dict[str, str]
) -> None:
    request = resolve_request(SETTINGS, metadata, mode=mode, image_count=count)
    ours = provider_body_for(
        SETTINGS, request, [IMAGE.format(i) for i in range(count)], mode, callback_url=JOB_CALLBACK
    )
    assert ours["model"] == model

    ark, bodies = sdk_wire
    # The SDK's create arguments, as it names them on the wire: it sends each one, null when not given.
    ark.content_generation.tasks.create(model=model, content=[{"type": "text", "text": "names"}])
    arguments = set(bodies[-1])
    assert set(ours) <= arguments, f"fields tasks.create has no argument for: {sorted(set(ours) - arguments)}"
    for item in ours["content"]:
        kind = item["type"]
        assert set(item) == set(get_type_hints(ITEM_TYPES[kind])), f"a {kind} item's keys differ from the SDK's"
        if kind in MEDIA_TYPES:
            assert set(item[kind]) == set(get_type_hints(MEDIA_TYPES[kind])), f"the {kind} object's keys differ"

    ark.content_generation.tasks.create(**ours)
    wire = bodies[-1]
    unset = {name for name, value in wire.items() if value is None}
    assert unset == arguments - set(ours)  # the SDK sends every argument it was not given as null, and only those
    assert {name: value for name, value in wire.items() if value is not None} == ours
