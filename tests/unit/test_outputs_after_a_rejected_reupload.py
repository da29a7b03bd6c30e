"""A key's outputs after a broken re-upload: the rejected newest upload replaces nothing, but the good upload before
it still replaces every older one (issue 19 item 2, found by BudgetJobLifecycle under make fuzz)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeDownloader, FakeStorage, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/cat.jpg"
SIDECAR = "videos/cat.jpg.json"
VIDEOS = {"https://cdn.example.com/cgt-00001.mp4": b"first video", "https://cdn.example.com/cgt-00002.mp4": b"second"}


class _PausesAfterASidecarRead(FakeStorage):
    """Runs `meanwhile` once, right after the first read of the key's sidecar: the delivery that read it stands
    still, its decision taken, while another container's poll runs."""

    meanwhile: Callable[[], object] | None = None

    def read_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        document = super().read_json(bucket, key)
        self._pause(key)
        return document

    def read_json_tagged(self, bucket: str, key: str) -> tuple[dict[str, Any] | None, str | None]:
        read = super().read_json_tagged(bucket, key)
        self._pause(key)
        return read

    def _pause(self, key: str) -> None:
        if self.meanwhile is not None and key == SIDECAR:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()


def _upload(runtime: Any, storage: FakeStorage, data: bytes, etag: str, sequencer: str) -> str:
    storage.add(BUCKET, KEY, data, etag=etag)
    return present(
        accept_upload(Upload(bucket=BUCKET, key=KEY, etag=etag, sequencer=sequencer), runtime, owner="s").job_id
    )


def test_an_older_upload_never_takes_back_the_outputs_of_a_newer_one_delivered_beside_it_after_a_rejected_reupload():
    """Fails on 2bc7683: uploads 1 and 2 of a key are sent, upload 3 is broken (REJECTED). Two polls deliver 1 and
    2 at once. Both ask the key's newest-upload record, which names the rejected 3: "nothing newer can deliver", so
    neither is replaced. Upload 1's delivery reads the sidecar (none yet), poll B delivers 2 and writes its sidecar,
    then 1's sidecar PUT lands over it: the key shows the first upload's video although the second delivered, and the
    second's paid video is named by no sidecar."""
    clock = FakeClock()
    storage = _PausesAfterASidecarRead()
    runtime, store, _, provider = make_runtime(clock, storage=storage, max_in_flight=2)
    # A second container of the poll function: its own Runtime (delivery slots, provider cache) over the same world.
    other, _, _, _ = make_runtime(clock, storage=storage, store=store, provider=provider, max_in_flight=2)
    runtime.downloader = other.downloader = FakeDownloader(VIDEOS)
    first = _upload(runtime, storage, image_bytes(), "e1", "01")
    clock.advance(5)
    second = _upload(runtime, storage, image_bytes(), "e2", "02")
    clock.advance(5)
    broken = _upload(runtime, storage, b"this is not an image", "e3", "03")
    assert store.job(broken).status is JobStatus.REJECTED
    clock.advance(120)  # both tasks have finished

    storage.meanwhile = lambda: run_poll(other, owner="poll-b", time_left=lambda: 300.0)
    run_poll(runtime, owner="poll-a", time_left=lambda: 300.0)

    assert storage.meanwhile is None, "no delivery read the key's sidecar: the race did not happen"
    assert store.job(second).status is JobStatus.SUCCEEDED
    sidecar = json.loads(storage.uploads[(BUCKET, SIDECAR)])
    assert sidecar["job_id"] == second, (
        f"the key shows upload {sidecar['source']['sequencer']}'s video though the newer upload 02 delivered"
    )
    assert storage.uploads[(BUCKET, sidecar["outputs"]["video"])] == b"second"
    older = store.job(first)
    assert older.status is not JobStatus.SUCCEEDED, "the older upload was delivered as the key's outputs"
    # Its video was paid for all the same: kept at its own key, and its error says where.
    said = present(older.error).message
    kept = said.split(f"s3://{BUCKET}/", 1)[1].split()[0]
    assert storage.uploads[(BUCKET, kept)] == b"first video", said
