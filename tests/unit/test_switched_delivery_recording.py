"""A delivery that dies after its sidecar switch (and after retiring the older upload's outputs) but before its job
is recorded: the video is delivered, and the sidecar vouches for it. Found while tracing a lifecycle machine fuzz
failure (callbacks machine, 2bc7683): the next check re-judges the job from scratch, so a fault then (the result
CDN refusing every attempt, the provider no longer knowing the task, an outage past the age limit) ended it FAILED
or TIMED_OUT while its outputs are the key's visible, complete set and the older upload's video was retired on its
behalf. Such an end now reads the key's sidecar first, and a sidecar naming the job records it SUCCEEDED."""

from __future__ import annotations

import contextlib
import json

import pytest

from seedance_pipeline.errors import PipelineError, ProviderRejected, ProviderUnavailable, ResultUnavailable
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.fakes import FakeStorage, make_runtime
from tests.support.images import image_bytes
from tests.support.lifecycle_world import Crash

BUCKET = "in-bucket"


class _DiesAfterRetire(FakeStorage):
    """The process dies (no except-branch runs) right after a DeleteObject: the retire of the replaced outputs."""

    dies = False

    def delete(self, bucket: str, key: str) -> None:
        super().delete(bucket, key)
        if self.dies:
            self.dies = False
            raise Crash(f"after DeleteObject {key}")


@pytest.mark.parametrize(
    "fault",
    [
        ResultUnavailable("the result URL answered 503"),
        ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound"),
        ProviderUnavailable("HTTP 503 from the provider"),
    ],
    ids=[
        "the CDN refuses every later attempt",
        "the provider no longer knows the task",
        "the provider is unreachable past the age limit",
    ],
)
def test_a_delivery_that_died_after_its_sidecar_switch_is_recorded_succeeded_whatever_the_next_check_meets(
    fault: PipelineError,
) -> None:
    storage = _DiesAfterRetire()
    runtime, store, _, provider = make_runtime(storage=storage, max_in_flight=2, max_delivery_attempts=3)
    image = image_bytes(400, 300)
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e1")
    accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e1", sequencer="01"), runtime, owner="s")
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e2")
    newer = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e2", sequencer="02"), runtime, owner="s")
    runtime.clock.advance(60)
    storage.dies = True
    with contextlib.suppress(Crash):
        run_poll(runtime, owner="dies", time_left=lambda: 300.0)
    sidecar = json.loads(storage.uploads[(BUCKET, "videos/c.jpg.json")])
    assert sidecar["job_id"] == newer.job_id and (BUCKET, sidecar["outputs"]["video"]) in storage.uploads
    assert not store.job(newer.job_id).status.is_terminal, "the crash came after the job was recorded"

    if isinstance(fault, ResultUnavailable):
        runtime.downloader.error = fault
    else:
        provider.get_error = fault
    for _ in range(40):  # past the dead invocation's lease, every retry the job schedules and twice its age limit
        runtime.clock.advance(400)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)

    job = store.job(newer.job_id)
    said = job.error.message if job.error else ""
    assert job.status is JobStatus.SUCCEEDED, f"{job.status.value} ({said}), yet its sidecar vouches for its video"
    assert job.outputs is not None and job.outputs.video_key == sidecar["outputs"]["video"]
    assert job.billed_tokens == sidecar["tokens"]["billed"] and any("recorded from its sidecar" in n for n in job.notes)


def test_a_job_whose_key_shows_another_uploads_outputs_still_ends_failed_on_a_fault() -> None:
    """The sidecar is evidence only for the job it names: a newer upload whose task the provider no longer knows,
    while the key still shows the older upload's delivered outputs, ends FAILED with its own reason, never SUCCEEDED
    with the older job's video."""
    runtime, store, _, provider = make_runtime(max_in_flight=2)
    storage = runtime.storage
    assert isinstance(storage, FakeStorage)
    image = image_bytes(400, 300)
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e1")
    older = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e1", sequencer="01"), runtime, owner="s")
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(older.job_id).status is JobStatus.SUCCEEDED
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e2")
    newer = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e2", sequencer="02"), runtime, owner="s")
    provider.get_error = ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound")
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)

    assert json.loads(storage.uploads[(BUCKET, "videos/c.jpg.json")])["job_id"] == older.job_id
    job = store.job(newer.job_id)
    assert job.status is JobStatus.FAILED and job.outputs is None, job
    assert job.error is not None and "no longer knows" in job.error.message
