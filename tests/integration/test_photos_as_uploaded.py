"""Photos as people upload them, over moto and the simulator: a HEIC photo, a JPEG with EXIF orientation 6 and a
9,000 px image each become a video of the right orientation, and the sidecar says what was changed."""

from __future__ import annotations

import io
import json
from typing import Any

import av
import pytest

from seedance_pipeline.models import JobStatus
from tests.support.photos import heic_bytes, jpeg_with_orientation, solid_jpeg

pytestmark = pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)


def _video_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def test_a_heic_a_sideways_jpeg_and_a_9000_px_image_become_upright_videos_with_the_changes_in_the_sidecar(
    pipeline, sim, stack
):
    uploads: dict[str, tuple[bytes, bool, list[dict[str, Any]]]] = {
        # key: (bytes, portrait video expected, the sidecar's input_changes without the key)
        "uploads/phone/IMG_0001.HEIC": (
            heic_bytes(600, 800),
            True,
            [{"what": "converted", "from": "heic", "to": "jpeg"}],
        ),
        "uploads/phone/IMG_0002.jpg": (
            jpeg_with_orientation(800, 600, 6),  # stored landscape, displayed portrait
            True,
            [{"what": "rotated", "exif_orientation": 6}],
        ),
        "uploads/camera/DSC_0003.jpg": (
            solid_jpeg(9000, 6000),
            False,
            [{"what": "scaled", "from": [9000, 6000], "to": [6000, 4000], "reason": "a side was over 6000 px"}],
        ),
    }
    for key, (data, _, _) in uploads.items():
        # ratio adaptive: the video follows the image the provider received, so its shape shows the orientation.
        pipeline.submit(pipeline.upload(key, data, {"resolution": "480p", "ratio": "adaptive"}))

    jobs = pipeline.run_until_terminal(timeout=180)

    s3 = stack.client("s3")
    for key, (_, portrait, changes) in uploads.items():
        job = jobs[key]
        assert job.status is JobStatus.SUCCEEDED, job.error
        sidecar = json.loads(s3.get_object(Bucket=stack.bucket, Key=job.outputs.sidecar_key)["Body"].read())
        assert sidecar["input_changes"] == [{"key": key, **change} for change in changes]
        width, height = _video_size(s3.get_object(Bucket=stack.bucket, Key=job.outputs.video_key)["Body"].read())
        assert (height > width) is portrait, f"{key}: the video is {width}x{height}"
    assert sim.counters.submit == 3
