"""Two deliveries of one key racing for its sidecar, where one of them is a second delivery of a job whose first
delivery already switched the sidecar to it and died before the job was recorded."""

from __future__ import annotations

import json
import re

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.result_delivery import deliver_results
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, TaskResult, Upload
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes
from tests.support.switch_crashes import BUCKET, SIDECAR, SwitchRacedStorage, delivered_then_died


def test_a_job_whose_own_switch_a_newer_upload_retired_meanwhile_never_claims_a_deleted_video_is_kept() -> None:
    storage = SwitchRacedStorage()
    runtime, store, _, _ = make_runtime(storage=storage, max_in_flight=2)
    older_id = delivered_then_died(runtime, storage)
    sidecar_key = SIDECAR
    first = json.loads(storage.uploads[sidecar_key])
    assert first["job_id"] == older_id and not store.job(older_id).status.is_terminal
    older_video = first["outputs"]["video"]

    runtime.clock.advance(400)  # past the dead invocation's lease
    storage.add(BUCKET, "uploads/c.jpg", image_bytes(400, 300), etag="e2")
    newer = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e2", sequencer="02"), runtime, owner="s")
    task_id = store.job(newer.job_id).task_id
    assert task_id is not None

    def newer_delivers() -> None:  # the newer upload's task finished; its delivery runs in another Lambda
        done = TaskResult(
            task_id=task_id, state="SUCCEEDED", raw_status="SUCCESS", video_url=f"https://cdn.example.com/{task_id}.mp4"
        )
        deliver_results(store.job(newer.job_id), done, runtime)

    storage.meanwhile = (older_id, newer_delivers)
    runtime.clock.advance(5)  # the newer task still runs: only the older job is delivered again by this poll
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert storage.meanwhile is None, "the older job's second delivery never reached its switch"
    assert json.loads(storage.uploads[sidecar_key])["job_id"] == newer.job_id
    assert (BUCKET, older_video) not in storage.uploads, "the newer delivery retired the older job's video"

    job = store.job(older_id)
    assert job.status.is_terminal
    said = job.error.message if job.error else ""
    claimed = re.findall(rf"s3://{BUCKET}/(\S+\.mp4)", said)
    missing = [key for key in claimed if (BUCKET, key) not in storage.uploads]
    assert not missing, f"job {job.job_id} ({job.status.value}) says its paid video is kept at {missing}: {said}"
    # It was delivered (its own earlier switch) and then replaced by a newer upload, as any delivered older upload.
    assert job.status is JobStatus.SUCCEEDED and job.outputs is not None and job.outputs.video_key == older_video


def test_a_hand_edited_sidecar_never_blocks_a_newer_uploads_delivery() -> None:
    runtime, store, storage, _ = make_runtime(max_in_flight=2)
    image = image_bytes(400, 300)
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e1")
    accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e1", sequencer="01"), runtime, owner="s")
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    sidecar_key = (BUCKET, "videos/c.jpg.json")
    edited = json.loads(storage.uploads[sidecar_key])
    edited["source"] = "edited by hand: see the wiki"
    storage.uploads[sidecar_key] = json.dumps(edited).encode()
    storage.add(BUCKET, "uploads/c.jpg", image, etag="e2")
    newer = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e2", sequencer="02"), runtime, owner="s")
    assert newer.job_id is not None
    for _ in range(20):
        runtime.clock.advance(400)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)

    job = store.job(newer.job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert json.loads(storage.uploads[sidecar_key])["job_id"] == newer.job_id


def test_a_sidecar_deleted_under_a_second_delivery_of_its_job_is_written_again() -> None:
    """A person deletes the key's sidecar (which names this job, from a delivery that died) between the second
    delivery's read and its switch: the switch lands on the empty key, and the sidecar names the job again."""
    storage = SwitchRacedStorage()
    runtime, store, _, _ = make_runtime(storage=storage, max_in_flight=2)
    job_id = delivered_then_died(runtime, storage)
    assert json.loads(storage.uploads[SIDECAR])["job_id"] == job_id

    storage.meanwhile = (job_id, lambda: storage.delete(*SIDECAR))
    runtime.clock.advance(400)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert storage.meanwhile is None
    assert store.job(job_id).status is JobStatus.SUCCEEDED
    assert SIDECAR in storage.uploads, "the job is recorded SUCCEEDED, but no sidecar names its outputs"
