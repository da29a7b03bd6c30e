"""A paid video is never thrown away: a re-upload that cannot deliver replaces nothing, a replaced job's video is
kept at its own key and named, and a cancel is called a cancel only when the provider shows one (issue 19)."""

from __future__ import annotations

import json
from typing import Any

from seedance_pipeline.errors import ErrorCode, ProviderRejected
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.status_check import check_job
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, ProviderState, TaskResult, Upload
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeDownloader, FakeProvider, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/cat.jpg"
SIDECAR = "videos/cat.jpg.json"
VIDEOS = {"https://cdn.example.com/cgt-00001.mp4": b"older video", "https://cdn.example.com/cgt-00002.mp4": b"newer"}


def _poll(runtime: Any, times: int = 1, step: float = 30.0) -> None:
    for _ in range(times):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        runtime.clock.advance(step)


def _upload(runtime: Any, storage: Any, data: bytes, etag: str, sequencer: str) -> str:
    storage.add(BUCKET, KEY, data, etag=etag)
    return present(
        accept_upload(Upload(bucket=BUCKET, key=KEY, etag=etag, sequencer=sequencer), runtime, owner="s").job_id
    )


def _kept_key(message: str) -> str:
    return message.split(f"s3://{BUCKET}/", 1)[1].split()[0].rstrip(").,;")


# --- item 2: only a newer upload that can deliver supersedes ------------------------------------------------------


def test_a_rejected_reupload_never_throws_away_the_older_uploads_paid_video():
    """Failed on 26248cd: the broken re-upload was REJECTED, yet the newest-upload record named it, so the older
    job's finished, billed task was failed SUPERSEDED before download and its video was stored nowhere."""
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(VIDEOS)
    older = _upload(runtime, storage, image_bytes(), "e1", "01")
    runtime.clock.advance(5)
    newer = _upload(runtime, storage, b"this is not an image", "e2", "02")
    assert store.job(newer).status is JobStatus.REJECTED
    runtime.clock.advance(60)
    _poll(runtime, times=3)

    job = store.job(older)
    assert job.status is JobStatus.SUCCEEDED, present(job.error).message
    sidecar = json.loads(storage.uploads[(BUCKET, SIDECAR)])
    assert sidecar["job_id"] == older
    assert storage.uploads[(BUCKET, sidecar["outputs"]["video"])] == b"older video"


def test_on_ark_a_rejected_reupload_never_cancels_the_older_uploads_queued_task():
    runtime, store, storage, provider = make_runtime(provider_api="ark", api_base_url="")
    provider.can_cancel = True
    provider.unready_state = "PENDING"
    provider.ready_after = 600
    older = _upload(runtime, storage, image_bytes(), "e1", "01")
    runtime.clock.advance(5)
    assert store.job(_upload(runtime, storage, b"broken", "e2", "02")).status is JobStatus.REJECTED
    _poll(runtime, times=5)
    assert provider.cancels == []
    assert not store.job(older).status.is_terminal


def test_a_job_replaced_by_a_live_newer_upload_keeps_its_paid_video_at_its_own_key_and_names_it():
    """Failed on 26248cd: the replaced job was failed SUPERSEDED before download ("its outputs are left to the newer
    job"): its billed video was never stored, and the error named no key."""
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(VIDEOS)
    older = _upload(runtime, storage, image_bytes(), "e1", "01")
    runtime.clock.advance(5)
    newer = _upload(runtime, storage, image_bytes(640, 480), "e2", "02")
    provider.tasks["cgt-00002"]["at"] += 600  # the older task is done first
    runtime.clock.advance(60)
    _poll(runtime)

    replaced = store.job(older)
    assert replaced.status is JobStatus.FAILED and present(replaced.error).code == ErrorCode.SUPERSEDED
    kept = _kept_key(present(replaced.error).message)
    assert storage.uploads[(BUCKET, kept)] == b"older video"
    assert (BUCKET, SIDECAR) not in storage.uploads, "a replaced job wrote the key's sidecar"
    event = next(j for j in runtime.events.published if j.job_id == older)
    assert kept in present(event.error).message

    runtime.clock.advance(600)
    _poll(runtime, times=3)
    assert store.job(newer).status is JobStatus.SUCCEEDED
    assert json.loads(storage.uploads[(BUCKET, SIDECAR)])["job_id"] == newer
    assert storage.uploads[(BUCKET, kept)] == b"older video", "the newer delivery deleted the kept video"


# --- item 15: a job without a sequencer never replaces a newer upload's outputs -----------------------------------


def test_a_newer_backfilled_upload_still_replaces_an_older_uploads_outputs():
    """The object's own evidence cuts both ways: the event of the newer upload was lost and backfill found it, so
    its job has no sequencer; it is the key's current object, so its outputs replace the older upload's."""
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(VIDEOS)
    older = _upload(runtime, storage, image_bytes(), "e1", "01")
    runtime.clock.advance(60)
    _poll(runtime, times=2)
    assert store.job(older).status is JobStatus.SUCCEEDED
    storage.add(BUCKET, KEY, image_bytes(640, 480), etag="e2")
    newer = present(accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e2"), runtime, owner="backfill").job_id)
    runtime.clock.advance(60)
    _poll(runtime, times=2)

    assert store.job(newer).status is JobStatus.SUCCEEDED
    sidecar = json.loads(storage.uploads[(BUCKET, SIDECAR)])
    assert sidecar["job_id"] == newer
    assert storage.uploads[(BUCKET, sidecar["outputs"]["video"])] == b"newer"


def test_an_older_upload_whose_newer_version_was_backfilled_never_replaces_the_newer_outputs():
    """The reverse of the review finding: the older upload has the sequencer, the newer (backfilled) one has none.
    Failed on 26248cd: the older job's delivery took the sidecar and deleted the newer, paid video."""
    runtime, store, storage, provider = make_runtime()
    runtime.downloader = FakeDownloader(VIDEOS)
    provider.ready_after = 300
    older = _upload(runtime, storage, image_bytes(), "e1", "01")
    storage.add(BUCKET, KEY, image_bytes(640, 480), etag="e2")  # its event is lost
    newer = present(accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e2"), runtime, owner="backfill").job_id)
    provider.tasks["cgt-00002"]["at"] -= 300  # the newer task finishes first
    _poll(runtime)
    assert store.job(newer).status is JobStatus.SUCCEEDED
    newer_video = json.loads(storage.uploads[(BUCKET, SIDECAR)])["outputs"]["video"]
    runtime.clock.advance(300)
    _poll(runtime, times=2)

    job = store.job(older)
    assert job.status is JobStatus.FAILED and present(job.error).code == ErrorCode.SUPERSEDED
    assert json.loads(storage.uploads[(BUCKET, SIDECAR)])["job_id"] == newer
    assert storage.uploads[(BUCKET, newer_video)] == b"newer"
    assert storage.uploads[(BUCKET, _kept_key(present(job.error).message))] == b"older video"


# --- item 9: a cancel is called a cancel only when the provider shows one ------------------------------------------


class _ArkTasks(FakeProvider):
    """Ark's task endpoint as documented: DELETE cancels a queued task and deletes a finished task's record (any
    2xx answers both); a running task cannot be cancelled, nor a cancelled one deleted. `states` overrides what
    the scripted clock says; `starts_on_cancel`/`finishes_on_cancel` move a task on just as the DELETE arrives."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.can_cancel = True
        self.states: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.finishes_on_cancel = False
        self.starts_on_cancel = False

    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
        if task_id in self.deleted:
            self.gets += 1
            raise ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound")
        state = self.states.get(task_id)
        if state == "queued":
            self.gets += 1
            return TaskResult(task_id=task_id, state=ProviderState.PENDING, raw_status="queued")
        if state == "running":
            self.gets += 1
            return TaskResult(task_id=task_id, state=ProviderState.RUNNING, raw_status="running")
        if state == "cancelled":
            self.gets += 1
            return TaskResult(task_id=task_id, state=ProviderState.FAILED, raw_status="cancelled")
        return super().get(task_id, deadline=deadline)

    def cancel(self, task_id: str, *, deadline: float | None = None) -> bool:
        state = self.states.get(task_id)
        if self.finishes_on_cancel:
            state = self.states[task_id] = "succeeded"
        if self.starts_on_cancel:
            state = self.states[task_id] = "running"
        if state == "queued":
            self.states[task_id] = "cancelled"
        elif state in ("running", "cancelled"):
            raise ProviderRejected(f"HTTP 409 InvalidAction: the task is {state}", code="InvalidAction")
        else:
            self.deleted.add(task_id)
        self.cancels.append(task_id)
        return True


def _queued_ark_job(**settings: Any) -> tuple[Any, Any, _ArkTasks, str]:
    clock = FakeClock()
    provider = _ArkTasks(clock)
    runtime, store, storage, _ = make_runtime(
        clock, provider=provider, provider_api="ark", api_base_url="", max_job_age_minutes=10, **settings
    )
    storage.add(BUCKET, KEY, image_bytes())
    job_id = present(
        accept_upload(Upload(bucket=BUCKET, key=KEY, etag="e1", sequencer="01"), runtime, owner="s").job_id
    )
    provider.states["cgt-00001"] = "queued"
    return runtime, store, provider, job_id


def _check(runtime: Any, store: Any, job_id: str, known: TaskResult | None = None) -> Any:
    job = store.acquire_lease(store.job(job_id), owner="p", now=runtime.clock(), lease_seconds=330)
    return check_job(job, runtime, owner="p", known=known)


def test_a_task_that_finished_after_a_stale_queued_answer_is_delivered_never_deleted_as_cancelled():
    """Failed on 26248cd: the stale "queued" answer led to a DELETE, which on Ark deletes a finished task's record
    (its billed video with it), and the 2xx was noted "the provider task ... was cancelled"."""
    runtime, store, provider, job_id = _queued_ark_job()
    stale = provider.get("cgt-00001")
    runtime.clock.advance(11 * 60)
    provider.states["cgt-00001"] = "succeeded"  # it finished after the answer was read
    job = _check(runtime, store, job_id, known=stale)

    assert "cgt-00001" not in provider.deleted, "the DELETE removed the finished, billed task"
    assert not any("cancelled" in note for note in job.notes)
    assert job.status is JobStatus.SUCCEEDED, present(job.error).message


def test_a_delete_that_met_a_task_finishing_is_never_recorded_as_a_cancel():
    """Failed on 26248cd: any 2xx was noted as "cancelled", though the DELETE deleted the finished task's record."""
    runtime, store, provider, job_id = _queued_ark_job()
    runtime.clock.advance(11 * 60)
    provider.finishes_on_cancel = True
    job = _check(runtime, store, job_id)

    assert job.status is JobStatus.TIMED_OUT
    assert not any("was cancelled" in note for note in job.notes), job.notes
    said = present(job.error).message
    assert "could not be read afterwards" in said and "billed" in said
    assert said in present(runtime.events.published[-1].error).message


def test_a_refused_cancel_on_a_timed_out_job_says_the_task_may_still_be_billed_on_the_job_and_in_the_event():
    """Failed on 26248cd: the refusal was only logged; the job and its event said nothing of a task still running."""
    runtime, store, provider, job_id = _queued_ark_job()
    runtime.clock.advance(11 * 60)
    provider.starts_on_cancel = True  # it left the queue between the read and the DELETE
    job = _check(runtime, store, job_id)

    assert job.status is JobStatus.TIMED_OUT
    said = present(job.error).message
    assert "refused to cancel task cgt-00001" in said and "may still run and be billed" in said
    event = runtime.events.published[-1]
    assert event.job_id == job_id and "may still run and be billed" in present(event.error).message


def test_a_cancel_the_provider_confirms_is_recorded_as_cancelled():
    runtime, store, provider, job_id = _queued_ark_job()
    runtime.clock.advance(11 * 60)
    job = _check(runtime, store, job_id)

    assert job.status is JobStatus.TIMED_OUT and provider.states["cgt-00001"] == "cancelled"
    assert "was cancelled (its status reads cancelled); nothing is billed" in present(job.error).message
    assert any("was cancelled" in note for note in job.notes)


def test_a_task_that_started_running_before_the_cancel_is_never_deleted_and_the_timeout_says_it_may_be_billed():
    runtime, store, provider, job_id = _queued_ark_job()
    stale = provider.get("cgt-00001")
    runtime.clock.advance(11 * 60)
    provider.states["cgt-00001"] = "running"
    job = _check(runtime, store, job_id, known=stale)

    assert provider.cancels == []
    assert job.status is JobStatus.TIMED_OUT
    assert "is running, which cannot be cancelled: it may still finish and be billed" in present(job.error).message


def test_a_gateway_job_timed_out_says_its_task_was_not_cancelled_and_may_still_be_billed():
    """Failed on 26248cd: the gateway format cannot cancel, and the TIMED_OUT error said nothing of the task."""
    runtime, store, storage, provider = make_runtime(max_job_age_minutes=10)
    provider.ready_after = 10**9
    job_id = _upload(runtime, storage, image_bytes(), "e1", "01")
    runtime.clock.advance(11 * 60)
    job = _check(runtime, store, job_id)

    assert job.status is JobStatus.TIMED_OUT
    assert "was not cancelled (this API cannot cancel): it may still finish and be billed" in present(job.error).message
    assert provider.cancels == []
