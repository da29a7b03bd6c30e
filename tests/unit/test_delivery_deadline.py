"""A job's downloads share one deadline inside its lease and the invocation's remaining time."""

from __future__ import annotations

import time

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.fakes import FakeDownloader, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"


def test_video_and_last_frame_downloads_share_one_deadline_within_the_invocation():
    runtime, store, storage, provider = make_runtime()
    provider.outcome = {"state": "SUCCEEDED", "last_frame_url": "https://cdn.example.com/last.png"}
    runtime.downloader = FakeDownloader({"https://cdn.example.com/last.png": b"\x89PNG"})
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes(), {"return-last-frame": "true"})
    job_id = accept_upload(Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01"), runtime, owner="s").job_id
    runtime.clock.advance(60)
    runtime.time_left = lambda: 40.0  # an invocation with 40 s left
    before = time.monotonic()
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(job_id or "").status is JobStatus.SUCCEEDED
    video, last_frame = runtime.downloader.deadlines
    assert video is not None and video == last_frame
    margin = runtime.settings.provider_call_margin_seconds
    assert before + 40 - margin - 1 <= video <= time.monotonic() + 40 - margin
