"""Output objects: one upload's outputs never overwrite another's, and a job's set becomes visible at once."""

import json

import pytest
from botocore.exceptions import ClientError

from seedance_pipeline.errors import KmsAccessDenied, Superseded
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.result_delivery import deliver_results
from seedance_pipeline.models import JobStatus, ProviderState, TaskResult
from seedance_pipeline.rules.keys import output_keys
from tests.support.fakes import FakeDownloader, FakeStorage, make_runtime
from tests.unit.test_polling import BUCKET, poll_until_terminal, submitted

VIDEO_1 = b"\x00\x00\x00\x18ftypmp42 first video"
VIDEO_2 = b"\x00\x00\x00\x18ftypmp42 second video"
VIDEO_URL_1, VIDEO_URL_2 = "https://cdn.example.com/cgt-00001.mp4", "https://cdn.example.com/cgt-00002.mp4"
BODIES = {VIDEO_URL_1: VIDEO_1, VIDEO_URL_2: VIDEO_2}


class FaultyStorage(FakeStorage):
    """Fails (or crashes the process) at one step of a delivery, on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.sidecar_fault: BaseException | None = None
        self.video_fault: BaseException | None = None

    def upload_stream(self, stream, bucket, key, *, content_type):
        if self.video_fault is not None:
            raise self.video_fault
        super().upload_stream(stream, bucket, key, content_type=content_type)

    def put_json(self, bucket, key, document):
        if self.sidecar_fault is not None:
            raise self.sidecar_fault
        super().put_json(bucket, key, document)


def faulty_runtime(**settings):
    runtime, store, _, provider = make_runtime(**settings)
    storage = FaultyStorage()
    runtime.storage = storage
    runtime.downloader = FakeDownloader(BODIES)
    return runtime, store, storage, provider


def client_error(code):
    return ClientError({"Error": {"Code": code, "Message": f"{code} from S3"}}, "PutObject")


def vouched(storage, sidecar_key):
    """What a reader sees: the sidecar, then each object it names (all must exist)."""
    document = json.loads(storage.uploads[(BUCKET, sidecar_key)])
    named = {name: key for name, key in document["outputs"].items() if name in ("video", "last_frame") and key}
    return document["job_id"], {name: storage.uploads[(BUCKET, key)] for name, key in named.items()}


def test_uploads_differing_only_in_extension_both_keep_their_paid_videos():
    runtime, store, storage, provider = faulty_runtime()
    jpg = submitted(runtime, storage, key="uploads/a.jpg", sequencer="01")
    png = submitted(runtime, storage, key="uploads/a.png", sequencer="02")
    poll_until_terminal(runtime, store)
    jobs = {job_id: store.get(job_id) for job_id in (jpg, png)}
    assert all(job.status is JobStatus.SUCCEEDED for job in jobs.values())
    written = {key for job in jobs.values() for key in (job.outputs.video_key, job.outputs.sidecar_key)}
    assert len(written) == 4  # no object written by both jobs
    assert {vouched(storage, job.outputs.sidecar_key)[1]["video"] for job in jobs.values()} == {VIDEO_1, VIDEO_2}
    assert vouched(storage, jobs[jpg].outputs.sidecar_key)[0] == jpg


def test_output_keys_too_long_for_s3_are_rejected_before_paying():
    runtime, store, storage, provider = faulty_runtime(output_prefix="generated/" + "v" * 1000 + "/")
    job_id = submitted(runtime, storage, key="uploads/cat.jpg")
    job = store.get(job_id)
    assert job.status is JobStatus.REJECTED
    assert job.error.code == "OUTPUT_KEY_TOO_LONG" and "1024 bytes" in job.error.message
    assert provider.submissions == []


def test_an_s3_error_while_delivering_counts_as_an_attempt_and_keeps_its_reason():
    runtime, store, storage, provider = faulty_runtime(max_delivery_attempts=3)
    storage.video_fault = client_error("AccessDenied")
    job_id = submitted(runtime, storage)
    poll_until_terminal(runtime, store)
    job = store.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error.code == "DELIVERY_FAILED"
    assert "AccessDenied" in job.error.message and "3 attempts" in job.error.message
    assert store.slots == set()


def test_a_transient_s3_error_while_delivering_is_retried_to_success():
    runtime, store, storage, provider = faulty_runtime()
    storage.sidecar_fault = client_error("InternalError")
    job_id = submitted(runtime, storage)
    while store.get(job_id).last_error is None:
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(30)
    assert store.get(job_id).last_error.code == "DELIVERY_FAILED"
    assert store.get(job_id).status is JobStatus.RUNNING
    storage.sidecar_fault = None
    poll_until_terminal(runtime, store)
    assert store.get(job_id).status is JobStatus.SUCCEEDED and store.get(job_id).delivery_attempts > 1


def test_a_reupload_whose_delivery_fails_before_the_sidecar_leaves_the_previous_set_whole():
    runtime, store, storage, provider = faulty_runtime(max_delivery_attempts=2)
    first = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="01")
    poll_until_terminal(runtime, store)
    sidecar = store.get(first).outputs.sidecar_key
    assert vouched(storage, sidecar) == (first, {"video": VIDEO_1})

    storage.sidecar_fault = client_error("SlowDown")
    second = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="02")
    poll_until_terminal(runtime, store)
    assert store.get(second).status is JobStatus.FAILED
    # The sidecar still vouches for the first job, and for exactly the first job's video.
    assert vouched(storage, sidecar) == (first, {"video": VIDEO_1})


def test_a_crash_between_video_and_sidecar_leaves_no_half_visible_set_and_the_retry_switches_whole():
    runtime, store, storage, provider = faulty_runtime()
    first = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="01")
    poll_until_terminal(runtime, store)
    sidecar = store.get(first).outputs.sidecar_key

    storage.sidecar_fault = SystemExit("the Lambda container died between the video and the sidecar")
    second = submitted(runtime, storage, key="uploads/cat.jpg", sequencer="02")
    runtime.clock.advance(60)
    with pytest.raises(SystemExit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert vouched(storage, sidecar) == (first, {"video": VIDEO_1})

    storage.sidecar_fault = None
    runtime.clock.advance(runtime.settings.lease_seconds + 1)
    poll_until_terminal(runtime, store)
    assert store.get(second).status is JobStatus.SUCCEEDED
    assert vouched(storage, sidecar) == (second, {"video": VIDEO_2})
    assert store.get(second).outputs.video_key != store.get(first).outputs.video_key


def test_a_reupload_replaces_the_previous_outputs_once_its_own_are_in_place():
    runtime, store, storage, provider = faulty_runtime()
    provider.outcome = {"state": "SUCCEEDED", "last_frame_url": "https://cdn.example.com/last.png"}
    runtime.downloader.bodies["https://cdn.example.com/last.png"] = b"\x89PNG last"
    first = submitted(runtime, storage, key="uploads/cat.jpg", metadata={"return-last-frame": "true"}, sequencer="01")
    poll_until_terminal(runtime, store)
    old = store.get(first).outputs
    second = submitted(runtime, storage, key="uploads/cat.jpg", metadata={"return-last-frame": "true"}, sequencer="02")
    poll_until_terminal(runtime, store)
    new = store.get(second).outputs
    assert vouched(storage, new.sidecar_key) == (second, {"video": VIDEO_2, "last_frame": b"\x89PNG last"})
    assert {old.video_key, old.last_frame_key}.isdisjoint({new.video_key, new.last_frame_key})
    assert (BUCKET, old.video_key) not in storage.uploads and (BUCKET, old.last_frame_key) not in storage.uploads


def test_an_older_upload_delivering_late_never_replaces_a_newer_uploads_outputs():
    runtime, store, storage, provider = faulty_runtime()
    older = store.get(submitted(runtime, storage, key="uploads/cat.jpg", sequencer="00A1"))
    newer = store.get(submitted(runtime, storage, key="uploads/cat.jpg", sequencer="00A2"))
    success = TaskResult(task_id="t", state=ProviderState.SUCCEEDED, raw_status="SUCCESS")
    newer_outputs, _ = deliver_results(newer, success.model_copy(update={"video_url": VIDEO_URL_2}), runtime)
    # The older job passed its own supersession check just before the newer upload was recorded: a race.
    with pytest.raises(Superseded) as refused:
        deliver_results(older, success.model_copy(update={"video_url": VIDEO_URL_1}), runtime)
    assert vouched(storage, newer_outputs.sidecar_key) == (newer.job_id, {"video": VIDEO_2})
    older_video = output_keys(older.source_key, runtime.settings, older.job_id).video
    assert storage.uploads[(BUCKET, older_video)] == VIDEO_1 and older_video in refused.value.message


def _kms_refusal() -> KmsAccessDenied:
    return KmsAccessDenied(
        "s3://in-bucket/videos/cat.mp4 cannot be written: S3 answered AccessDenied (kms:GenerateDataKey on key "
        "arn:aws:kms:us-east-1:111122223333:key/k1); set OutputBucketKmsKeyArn and grant kms:GenerateDataKey"
    )


def test_a_paid_video_the_output_key_refuses_waits_for_the_grant_and_is_then_stored():
    """A delivery refused by the output bucket's KMS key is a configuration fault an operator mends: the paid video
    must not be dropped (a `jobs retry` pays again). It waits, slowly and visibly, and is stored once the key allows."""
    runtime, store, storage, provider = faulty_runtime(max_delivery_attempts=3)
    storage.video_fault = _kms_refusal()
    job_id = submitted(runtime, storage)
    for _ in range(40):  # 20 minutes of polls, 30 s apart
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(30)
    job = store.get(job_id)
    assert job.status is JobStatus.RUNNING, job.error
    assert job.last_error.code == "KMS_ACCESS_DENIED" and "OutputBucketKmsKeyArn" in job.last_error.message
    # Spaced 15 minutes apart, not every poll: 2 attempts in 20 minutes (max_delivery_attempts does not apply).
    assert job.delivery_attempts == 2
    assert len(provider.submissions) == 1
    storage.video_fault = None
    poll_until_terminal(runtime, store)
    job = store.get(job_id)
    assert job.status is JobStatus.SUCCEEDED and len(provider.submissions) == 1
    assert storage.uploads[(BUCKET, job.outputs.video_key)] == VIDEO_1


def test_a_delivery_the_output_key_keeps_refusing_ends_failed_after_about_a_day_with_its_reason():
    runtime, store, storage, provider = faulty_runtime()
    storage.video_fault = _kms_refusal()
    job_id = submitted(runtime, storage)
    for _ in range(24 * 4 + 8):  # a little over a day, one poll every 15 minutes
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(15 * 60)
        if store.get(job_id).status.is_terminal:
            break
    job = store.get(job_id)
    assert job.status is JobStatus.FAILED and job.error.code == "KMS_ACCESS_DENIED"
    assert "about a day" in job.error.message and "pays again" in job.error.message
    assert 80 <= job.delivery_attempts <= 100
    assert store.slots == set()
