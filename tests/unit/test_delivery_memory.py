"""Memory is bounded per poll invocation: result transfers at once are derived from the function's memory."""

from __future__ import annotations

import io
import threading
import time

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL, FakeDownloader, make_runtime
from tests.support.images import image_bytes

MIB = 1024**2


def test_deliveries_at_once_fit_sixty_percent_of_the_functions_memory_after_the_process_itself():
    settings = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, aws_lambda_function_memory_size=1024)
    per_delivery = settings.multipart_chunk_bytes * (settings.multipart_concurrency + 1)  # 5 parts of 8 MiB
    assert settings.delivery_concurrency == 11
    peak = settings.delivery_concurrency * per_delivery + settings.process_baseline_mib * MIB
    assert peak <= 0.6 * 1024 * MIB  # 32 videos due at once: 11 transfer, 21 wait their turn
    assert (
        Settings(
            jobs_table_name="t", api_base_url=GATEWAY_URL, aws_lambda_function_memory_size=128
        ).delivery_concurrency
        == 1
    )
    assert (
        Settings(
            jobs_table_name="t", api_base_url=GATEWAY_URL, aws_lambda_function_memory_size=10240
        ).delivery_concurrency
        == 32
    )
    assert (
        Settings(jobs_table_name="t", api_base_url=GATEWAY_URL).delivery_concurrency == 32
    )  # off Lambda: PollConcurrency


class CountingDownloader(FakeDownloader):
    """Holds each transfer open a moment and records how many were open at once."""

    def __init__(self) -> None:
        super().__init__()
        self.open_now = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def open(self, url: str, *, max_bytes: int, deadline: float | None = None) -> io.BytesIO:
        with self._lock:
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
        time.sleep(0.05)
        with self._lock:
            self.open_now -= 1
        return io.BytesIO(self.default)


def test_a_poll_with_many_finished_videos_transfers_no_more_at_once_than_memory_allows():
    runtime, store, storage, provider = make_runtime(
        aws_lambda_function_memory_size=512, max_in_flight=12, poll_concurrency=32
    )
    assert runtime.settings.delivery_concurrency == 3
    downloader = CountingDownloader()
    runtime.downloader = downloader
    for n in range(12):
        storage.add("in-bucket", f"uploads/{n}.jpg", image_bytes())
        accept_upload(Upload(bucket="in-bucket", key=f"uploads/{n}.jpg", sequencer=f"{n + 1:02X}"), runtime, owner="s")
    runtime.clock.advance(120)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert {job.status for job in store.jobs()} == {JobStatus.SUCCEEDED}
    assert downloader.most_at_once == 3
