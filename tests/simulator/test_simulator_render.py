"""The rendered results: real H.264 MP4s of the right size, length and motion, and the last-frame PNG."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import pytest
import requests
from PIL import Image, ImageChops, ImageStat

from seedance_simulator import SimulatorServer
from seedance_simulator.dimensions import keep_ratio_size, nearest_ratio, output_size
from seedance_simulator.render import Camera, RenderSpec, open_source
from tests.support.photos import jpeg_with_orientation
from tests.support.simulator_client import Client, make_image


def fetch_video(client: Client, **overrides: object) -> tuple[bytes, dict]:
    answer = client.wait(client.submit(**overrides), timeout=60)
    assert answer["status"] == "SUCCESS", answer
    return client.session.get(answer["data"]["output"], timeout=30).content, answer


def decode(video: bytes) -> tuple[av.video.stream.VideoStream, list[Image.Image], str]:
    with av.open(io.BytesIO(video), mode="r") as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        return stream, frames, stream.codec_context.name


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_480p_16_9_is_h264_at_24_fps_864x480_with_121_frames(client: Client) -> None:
    video, _ = fetch_video(client)
    stream, frames, codec = decode(video)
    assert codec == "h264"
    assert stream.average_rate == 24
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (864, 480)
    assert len(frames) == 121
    assert {f.size for f in frames} == {(864, 480)}


def test_480p_1_1_is_640x640(client: Client) -> None:
    video, _ = fetch_video(client, ratio="1:1")
    stream, frames, _ = decode(video)
    assert (stream.width, stream.height) == (640, 640)
    assert len(frames) == 121


def test_10_seconds_is_241_frames(client: Client) -> None:
    video, _ = fetch_video(client, duration=10, camerafixed=True)
    _, frames, _ = decode(video)
    assert len(frames) == 241


def test_camera_moves_unless_camerafixed(client: Client) -> None:
    moving, _ = fetch_video(client)
    fixed, _ = fetch_video(client, camerafixed=True)
    _, moving_frames, _ = decode(moving)
    _, fixed_frames, _ = decode(fixed)
    # Lossy coding leaves a trace of noise between identical pictures; a camera move changes them wholesale.
    assert mean_difference(fixed_frames[0], fixed_frames[-1]) < 1.0
    assert mean_difference(moving_frames[0], moving_frames[-1]) > 10.0
    # Small steps: a slow move, not a cut.
    assert (
        mean_difference(moving_frames[60], moving_frames[61]) < mean_difference(moving_frames[0], moving_frames[-1]) / 5
    )


def test_camerafixed_frames_are_pixel_identical_before_encoding() -> None:
    source = open_source(make_image())
    fixed = Camera(source, RenderSpec(864, 480, 121, camerafixed=True, watermark=False, last_frame=False))
    moving = Camera(source, RenderSpec(864, 480, 121, camerafixed=False, watermark=False, last_frame=False))
    assert ImageChops.difference(fixed.frame(0), fixed.frame(120)).getbbox() is None
    assert ImageChops.difference(moving.frame(0), moving.frame(120)).getbbox() is not None


def test_last_frame_png_has_the_video_size_and_matches_its_last_frame(client: Client) -> None:
    video, answer = fetch_video(client, ratio="9:16", return_last_frame=True)
    response = client.session.get(answer["data"]["content"]["last_frame_url"], timeout=30)
    assert response.headers["Content-Type"] == "image/png"
    png = Image.open(io.BytesIO(response.content))
    assert png.format == "PNG"
    stream, frames, _ = decode(video)
    assert png.size == (stream.width, stream.height) == (480, 864)
    # It is the picture of the final camera position: nearer the video's last frame than any earlier one
    # (the remaining difference is lossy coding of a detailed test image).
    to_last = mean_difference(png.convert("RGB"), frames[-1])
    assert to_last < 8.0
    assert all(to_last < mean_difference(png.convert("RGB"), frames[i]) for i in (0, 60, 100))


def test_watermark_marks_the_lower_right_of_the_video_but_not_the_last_frame(client: Client) -> None:
    plain, plain_answer = fetch_video(client, camerafixed=True, return_last_frame=True)
    marked, marked_answer = fetch_video(client, camerafixed=True, return_last_frame=True, watermark=True)
    _, plain_frames, _ = decode(plain)
    _, marked_frames, _ = decode(marked)
    width, height = plain_frames[0].size
    corner = (width * 2 // 3, height * 4 // 5, width, height)
    elsewhere = (0, 0, width // 2, height // 2)
    assert mean_difference(plain_frames[0].crop(corner), marked_frames[0].crop(corner)) > 5.0
    assert mean_difference(plain_frames[0].crop(elsewhere), marked_frames[0].crop(elsewhere)) < 1.0
    plain_png = client.session.get(plain_answer["data"]["last_frame_url"], timeout=30).content
    marked_png = client.session.get(marked_answer["data"]["last_frame_url"], timeout=30).content
    assert (
        ImageChops.difference(Image.open(io.BytesIO(plain_png)), Image.open(io.BytesIO(marked_png))).getbbox() is None
    )


def test_adaptive_ratio_follows_the_image(client: Client, server: SimulatorServer) -> None:
    from tests.support.simulator_client import data_url

    server.knobs.video_body_factory = lambda task: (0, [])
    portrait = client.submit(images=[data_url(make_image(400, 700))], ratio="adaptive")
    assert (server.task(portrait).width, server.task(portrait).height) == (480, 864)


@pytest.mark.parametrize(
    ("resolution", "ratio", "size"),
    [
        ("480p", "16:9", (864, 480)),
        ("720p", "16:9", (1248, 704)),
        ("1080p", "16:9", (1920, 1088)),
        ("480p", "1:1", (640, 640)),
        ("720p", "1:1", (960, 960)),
        ("1080p", "1:1", (1440, 1440)),
        ("720p", "9:16", (704, 1248)),
        ("480p", "4:3", (736, 544)),
        ("1080p", "3:4", (1248, 1664)),
        ("720p", "21:9", (1504, 640)),
        ("1080p", "9:21", (928, 2176)),
    ],
)
def test_fixed_ratio_sizes_match_the_upstream_table(resolution: str, ratio: str, size: tuple[int, int]) -> None:
    assert output_size(resolution, ratio, 1000, 1000) == size


def test_adaptive_picks_the_nearest_listed_ratio() -> None:
    assert nearest_ratio(1920, 1080) == "16:9"
    assert nearest_ratio(1000, 1000) == "1:1"
    assert nearest_ratio(600, 800) == "3:4"
    assert nearest_ratio(2500, 1000) == "21:9"
    assert output_size("720p", "adaptive", 400, 1000) == (640, 1504)


def test_keep_ratio_keeps_the_image_ratio_at_the_pixel_budget() -> None:
    width, height = keep_ratio_size("720p", 1000, 500)
    assert width % 16 == 0
    assert height % 16 == 0
    assert width / height == pytest.approx(2.0, rel=0.03)
    assert width * height == pytest.approx(1248 * 704, rel=0.03)


def test_command_line_entry_point_serves_until_stopped(tmp_path: Path) -> None:
    dev = Path(__file__).resolve().parents[2] / "dev"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seedance_simulator",
            "--port",
            "0",
            "--api-key",
            "cli-secret",
            "--work-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(dev), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "cli-secret" not in line
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        assert requests.get(base_url + "/healthz", timeout=10).json() == {"ok": True}
        answer = requests.get(base_url + "/v2/videos/generations/cgt-x", timeout=10)
        assert answer.status_code == 401
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "cli-secret" not in stderr


def test_a_first_and_last_frame_clip_starts_on_the_first_image_and_ends_on_the_last(tmp_path: Path) -> None:
    import threading

    from seedance_simulator.render import render

    first, last = make_image(), _solid_png((240, 160, 30))
    spec = RenderSpec(864, 480, 49, camerafixed=False, watermark=False, last_frame=False, end_image_sha256="e" * 64)
    result = render(first, "f" * 64, spec, tmp_path, threading.Event(), end_image_bytes=last)

    assert result.video_path is not None
    _, frames, _ = decode(result.video_path.read_bytes())
    start = Camera(open_source(first), RenderSpec(864, 480, 49, False, False, False)).frame(0)
    end = open_source(last).resize((864, 480))
    assert mean_difference(frames[0], start) < 8.0
    assert mean_difference(frames[-1], end) < 8.0
    assert mean_difference(frames[-1], start) > 40.0


def _solid_png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_exif_orientation_is_ignored_as_the_provider_ignores_it() -> None:
    """A portrait phone photo stored as landscape pixels with orientation 6 renders sideways, as the provider's own
    does: so a pipeline test of an upright video proves the pipeline turned the photo, not the simulator."""
    sideways = open_source(jpeg_with_orientation(800, 600, 6))
    assert sideways.size == (800, 600)
