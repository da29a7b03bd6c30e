"""Reference videos and audio (Seedance 2.x) change what the simulator renders, so a test can tell they were used:
a band of one colour, drawn from the references, along the bottom of every frame and of the last-frame image."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image, ImageStat

from seedance_simulator import SimulatorServer
from seedance_simulator.render import Camera, RenderSpec, open_source
from tests.support.simulator_client import DEFAULT_IMAGE_URL, SimulatorSession, make_image

V2 = "doubao-seedance-2-0-260128"
BAND_ROWS = 8  # the band is at least 8 rows high


def _item(kind: str, url: str, role: str) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}, "role": role}


def _last_frame(server: SimulatorServer, *references: dict[str, Any]) -> Image.Image:
    """Create a 2.0 task with a reference image and `references`, and fetch its last-frame image."""
    client = SimulatorSession(server)
    tasks = server.ark_base_url + "/contents/generations/tasks"
    content = [{"type": "text", "text": "a slow push-in"}, _item("image_url", DEFAULT_IMAGE_URL, "reference_image")]
    body = {"model": V2, "content": [*content, *references], "resolution": "480p", "duration": 4}
    created = client.session.post(tasks, json={**body, "return_last_frame": True}, headers=client.headers, timeout=30)
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 120  # a bound on a hung render, not a timing assertion
    while True:
        task = client.session.get(f"{tasks}/{created.json()['id']}", headers=client.headers, timeout=30).json()
        if task["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert task["status"] == "succeeded", task
    png = client.session.get(task["content"]["last_frame_url"], timeout=30)
    return Image.open(io.BytesIO(png.content)).convert("RGB")


def _bottom(image: Image.Image) -> Image.Image:
    return image.crop((0, image.height - BAND_ROWS, image.width, image.height))


def _one_colour(region: Image.Image) -> tuple[int, ...] | None:
    low_high = ImageStat.Stat(region).extrema
    if all(high - low <= 2 for low, high in low_high):
        return tuple(low for low, _ in low_high)
    return None


def test_a_reference_video_or_audio_marks_the_render_and_different_references_mark_it_differently(
    server: SimulatorServer,
) -> None:
    server.knobs.video_body_factory = lambda task: (0, [])  # only the last-frame image is rendered
    video_a = _last_frame(server, _item("video_url", "https://media.example.com/a.mp4", "reference_video"))
    video_b = _last_frame(server, _item("video_url", "https://media.example.com/b.mp4", "reference_video"))
    sound = _last_frame(server, _item("audio_url", "https://media.example.com/a.mp3", "reference_audio"))
    plain = _last_frame(server)

    bands = [_one_colour(_bottom(image)) for image in (video_a, video_b, sound)]
    assert all(band is not None for band in bands)
    assert len(set(bands)) == 3
    assert _one_colour(_bottom(plain)) is None  # without references, the bottom rows are the picture


def test_every_frame_of_a_clip_with_references_carries_the_band() -> None:
    spec = RenderSpec(width=320, height=180, frames=9, camerafixed=False, watermark=False, last_frame=False)
    source = open_source(make_image())
    marked = Camera(source, RenderSpec(**{**spec.__dict__, "reference": "12ab34" + "0" * 58}), None)
    colours = {_one_colour(_bottom(marked.frame(i))) for i in range(spec.frames)}
    assert colours == {(0x12, 0xAB, 0x34)}
    assert _one_colour(_bottom(Camera(source, spec, None).frame(0))) is None
