"""A delivery that dies right after its sidecar switch lands, before its job is recorded; and another delivery of
the key landing between a switch's read and its write. Shared by the tests of what the next check makes of it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload
from seedance_pipeline.ports import Readable
from tests.support.fakes import FakeRuntime, FakeStorage
from tests.support.images import image_bytes
from tests.support.lifecycle_world import Crash

BUCKET = "in-bucket"
SOURCE = "uploads/c.jpg"
SIDECAR = (BUCKET, "videos/c.jpg.json")


class SwitchRacedStorage(FakeStorage):
    """`dies`: the process dies (no except-branch runs) right after the next sidecar switch lands. `meanwhile`: run
    just before the next switch of the named job's sidecar is sent. `upload_fault`: every media upload raises it."""

    dies = False
    meanwhile: tuple[str, Callable[[], Any]] | None = None
    upload_fault: Exception | None = None

    def upload_stream(self, stream: Readable, bucket: str, key: str, *, content_type: str) -> None:
        if self.upload_fault is not None:
            raise self.upload_fault
        super().upload_stream(stream, bucket, key, content_type=content_type)

    def replace_json(self, bucket: str, key: str, document: dict[str, Any], *, etag: str | None) -> bool:
        if self.meanwhile is not None and document.get("job_id") == self.meanwhile[0]:
            run, self.meanwhile = self.meanwhile[1], None
            run()
        switched = super().replace_json(bucket, key, document, etag=etag)
        if switched and self.dies:
            self.dies = False
            raise Crash(f"after the conditional PutObject {key}")
        return switched


def delivered_then_died(runtime: FakeRuntime, storage: SwitchRacedStorage, *, etag: str = "e1") -> str:
    """Upload uploads/c.jpg, and let a poll deliver it and die right after its sidecar switch: the job's id."""
    storage.add(BUCKET, SOURCE, image_bytes(400, 300), etag=etag)
    accepted = accept_upload(Upload(bucket=BUCKET, key=SOURCE, etag=etag, sequencer="01"), runtime, owner="s")
    assert accepted.job_id is not None, accepted.reason
    runtime.clock.advance(60)
    storage.dies = True
    with contextlib.suppress(Crash):
        run_poll(runtime, owner="dies", time_left=lambda: 300.0)
    assert not storage.dies, "the delivery never switched the sidecar"
    return accepted.job_id
