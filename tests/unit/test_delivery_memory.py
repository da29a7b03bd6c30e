"""Memory is bounded per poll invocation: result transfers at once are derived from the function's memory."""

from __future__ import annotations

import io
import threading

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


VIDEO_BYTES = 3 * MIB + 17


class TransferStream(io.BytesIO):
    """A video body that counts as in transfer from open() until closed, and records the size of every read."""

    def __init__(self, downloader: CountingDownloader) -> None:
        super().__init__(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (VIDEO_BYTES - 12))
        self._downloader = downloader
        self._first_read = True

    def read(self, size: int | None = -1) -> bytes:
        self._downloader.reads.append(size)
        if self._first_read:
            self._first_read = False
            self._downloader.hold_while_others_start()
        return super().read(size)

    def close(self) -> None:
        if not self.closed:
            self._downloader.finished()
        super().close()


class CountingDownloader(FakeDownloader):
    """Counts the transfers in progress (from open until the stream is closed, the streaming included). Each one
    holds at its first read until more than `cap` are in progress or a short while has passed, so transfers that
    are allowed to overlap do (a wait, not a timed assertion: a correct poller only waits a little longer)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.open_now = 0
        self.most_at_once = 0
        self.reads: list[int | None] = []
        self._changed = threading.Condition()

    def open(self, url: str, *, max_bytes: int, deadline: float | None = None) -> io.BytesIO:
        with self._changed:
            self.open_now += 1
            self.most_at_once = max(self.most_at_once, self.open_now)
            self._changed.notify_all()
        return TransferStream(self)

    def hold_while_others_start(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.open_now > self.cap, timeout=0.2)

    def finished(self) -> None:
        with self._changed:
            self.open_now -= 1
            self._changed.notify_all()


def test_a_poll_with_many_finished_videos_transfers_no_more_at_once_than_memory_allows():
    runtime, store, storage, provider = make_runtime(
        aws_lambda_function_memory_size=512, max_in_flight=12, poll_concurrency=32
    )
    assert runtime.settings.delivery_concurrency == 3
    downloader = CountingDownloader(cap=3)
    runtime.downloader = downloader
    for n in range(12):
        storage.add("in-bucket", f"uploads/{n}.jpg", image_bytes())
        accept_upload(Upload(bucket="in-bucket", key=f"uploads/{n}.jpg", sequencer=f"{n + 1:02X}"), runtime, owner="s")
    runtime.clock.advance(120)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert {job.status for job in store.jobs()} == {JobStatus.SUCCEEDED}
    assert downloader.open_now == 0, "a transfer was never closed"
    # Counted over the whole transfer (download and upload), not only while opening the download.
    assert downloader.most_at_once == 3, f"{downloader.most_at_once} videos were in transfer at once"
    # Each transfer streams in bounded reads: no video is ever read whole into memory.
    whole = [size for size in downloader.reads if size is None or size < 0 or size >= VIDEO_BYTES]
    assert not whole, f"a video body was read whole: reads of {whole}"
    assert len(downloader.reads) > 12 * 2
    videos = [body for (_bucket, key), body in storage.uploads.items() if key.endswith(".mp4")]
    assert len(videos) == 12 and all(len(body) == VIDEO_BYTES for body in videos)
