"""The job lifecycle as a state machine: uploads, duplicate and out-of-order deliveries, submit and poll
invocations (two at once, interleaved at any adapter call), provider outcomes and faults (a POST refused, a POST
whose answer is lost, a queue that backs up, a "queued" answer gone stale before the next request), store and
storage faults (the task id's write throttled after the POST, an archived or unreadable image), a crash before or
after any adapter call, clock jumps past leases, and operator retries, all over the in-memory fakes. The fake
provider's tasks are queued, then running, then done, and its DELETE follows Ark's documented rules (a queued
task is cancelled, a running or cancelled one refused, a finished one's record deleted).

After every step the invariants of the README hold: at most one provider task per upload, no two jobs sharing a
task and each job's task made for its own upload (ArkJobLifecycle adds lost answers among identical uploads), no
output object written for two source keys, every job live at the provider holds a slot and no more than
MaxInFlight are held, every sidecar vouches only for objects of its own job, and no key shows an older upload's
outputs once a newer upload of it has delivered. And (issue 19): a body that may have left is never POSTed again
and never called never-submitted; a paid video (a task the provider answered succeeded) is stored where its job,
its error or a sidecar names it; no job is terminal without a reason; only a newer upload that can still deliver
supersedes; a delivery retry never runs before its scheduled time; a DELETE is sent only for a job past its age or
replaced, and never reaches a finished task; "cancelled" is said only of a task the provider reads cancelled.
Rules broken inside an invocation (whose errors the poller logs and survives) are caught by MachineStore as the
job is written. At the end, with the provider healthy, every event delivered once more (Lambda's retry) and the
clock past every lease and limit, every upload is terminal with a reason and no slot is held.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any, cast

from botocore.exceptions import ClientError
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seedance_local.operator_tools import retry_job
from seedance_pipeline.errors import (
    ErrorCode,
)
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import WRITER_GRACE_SECONDS, Job, JobStatus, Upload
from seedance_pipeline.ports import (
    EventPublisherPort,
    JobStorePort,
    ObjectStoragePort,
    ProviderPort,
    ResultDownloaderPort,
)
from seedance_pipeline.runtime import Runtime
from tests.support.fakes import FakeClock, FakeStorage, make_runtime
from tests.support.images import image_bytes
from tests.support.lifecycle_world import (
    MAY_HAVE_LEFT,
    AdapterCalls,
    Crash,
    CrashPoint,
    Downloads,
    Faulty,
    MachineStore,
    ScriptedProvider,
    ScriptedStorage,
    crash_points,
    upload_identity,
)

BUCKET = "in-bucket"
KEYS = ("uploads/a.jpg", "uploads/b.png", "uploads/sub/c.jpg")
GOOD_IMAGE = image_bytes(400, 300)
MAX_IN_FLIGHT = 2
LIVE_AT_PROVIDER = (JobStatus.SUBMITTED, JobStatus.RUNNING)


class JobLifecycle(RuleBasedStateMachine):
    # The stack's provider dialect: the unified gateway here; ArkJobLifecycle below runs the same rules on Ark.
    stack_settings: dict[str, Any] = {}
    submit_faults: tuple[str | None, ...] = (None, None, "429", "503", "504", "unreadable-2xx", "reset-after-send")
    # The end: this many polls, the clock this far apart, until every job is terminal.
    settle_rounds, settle_seconds = 60, 400.0
    start_at = 1_800_000_000.0

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(self.start_at)
        self.provider = ScriptedProvider(self.clock)
        self.store = MachineStore()
        fake_runtime, _, _, _ = make_runtime(
            self.clock,
            provider=self.provider,
            store=self.store,
            max_in_flight=MAX_IN_FLIGHT,
            poll_concurrency=1,
            max_job_age_minutes=30,
            max_delivery_attempts=3,
            **self.stack_settings,
        )
        self.fake_runtime = fake_runtime
        store = self.store
        self.store.watchers += [
            self._never_called_never_submitted_once_sent,
            self._superseded_only_by_an_upload_that_can_deliver,
            self._a_delivery_retry_waits_for_its_time,
        ]
        self.provider.on_cancel = self._a_delete_has_a_reason
        # Operator retries: (upload identity, POSTs seen by then); a POST after one is the person's decision.
        self.retries: list[tuple[tuple[str, str], int]] = []
        # Jobs live or delivered when the current step began: a decision taken then may land after they ended.
        self.could_deliver_at_step_start: set[str] = set()
        self.storage = ScriptedStorage()
        self.downloads = Downloads()
        self.calls = AdapterCalls()
        # Every adapter behind the crash switch; Faulty is duck-typed, so the ports are asserted, not inferred.
        self.runtime = self._new_runtime(fake_runtime, store)
        # Two invocations at once run in two containers, each with its own Runtime.
        self.other_runtime = self._new_runtime(fake_runtime, store)
        self.uploads: list[Upload] = []
        self.batch_uploads: list[tuple[Upload, int]] = []
        self.slept = 0
        self.etag_counter = 0
        self.invocations = 0

    # --- the world ----------------------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS), good=st.sampled_from([True, True, True, False]), crash=crash_points)
    def upload(self, key: str, good: bool, crash: CrashPoint | None) -> None:
        """A new object (or a new version of a key), and its event's first delivery."""
        self.etag_counter += 1
        etag = f"etag{self.etag_counter}"
        self.storage.add(BUCKET, key, GOOD_IMAGE if good else b"GIF89a almost an image", etag=etag)
        upload = Upload(bucket=BUCKET, key=key, etag=etag, sequencer=f"{self.etag_counter:016X}")
        self.uploads.append(upload)
        self._invoke(lambda owner: accept_upload(upload, self.runtime, owner=owner), crash)

    @rule(rows=st.integers(1, 4), missing=st.booleans(), crash=crash_points)
    def batch_upload(self, rows: int, missing: bool, crash: CrashPoint | None) -> None:
        """A batch file: each row names its own image (so a task traces to one row), the last maybe a missing one."""
        self.etag_counter += 1
        n = self.etag_counter
        lines = ["id,image"]
        for row in range(1, rows + 1):
            if not (missing and row == rows):
                self.storage.add(BUCKET, f"uploads/_b{n}/r{row}.jpg", GOOD_IMAGE, etag=f"img{n}-{row}")
            lines.append(f"r{row},_b{n}/r{row}.jpg")
        key = f"uploads/batch{n}.csv"
        self.storage.add(BUCKET, key, "\r\n".join(lines).encode(), etag=f"etag{n}")
        upload = Upload(bucket=BUCKET, key=key, etag=f"etag{n}", sequencer=f"{n:016X}")
        self.batch_uploads.append((upload, rows))
        self._invoke(lambda owner: accept_upload(upload, self.runtime, owner=owner), crash)

    @precondition(lambda self: bool(self.batch_uploads))
    @rule(data=st.data(), crash=crash_points)
    def deliver_a_batch_event_again(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        upload, _ = data.draw(st.sampled_from(self.batch_uploads))
        self._invoke(lambda owner: accept_upload(upload, self.runtime, owner=owner), crash)

    @rule(seconds=st.sampled_from([5.0, 30.0, 130.0, 400.0, 2000.0]))
    def clock_jumps(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        data=st.data(),
        status_checks_fail=st.booleans(),
        queue_seconds=st.sampled_from([15.0, 15.0, 2500.0]),
        task_id_write_throttled=st.sampled_from([False, False, False, True]),
        result_downloads_fail=st.sampled_from([False, False, True]),
    )
    def provider_weather(
        self,
        data: st.DataObject,
        status_checks_fail: bool,
        queue_seconds: float,
        task_id_write_throttled: bool,
        result_downloads_fail: bool,
    ) -> None:
        """The next POST meets this fault; status checks answer 502 until the weather changes; new tasks wait this
        long in the queue (past MaxJobAgeMinutes: the job gives up on a queued task); the store may refuse the
        write of the next task id after its POST (a throttle)."""
        self.provider.submit_fault = data.draw(st.sampled_from(self.submit_faults))
        self.provider.get_fault = status_checks_fail
        self.provider.queue_seconds = queue_seconds
        self.store.refuse_task_id_write = task_id_write_throttled
        self.downloads.fault = result_downloads_fail

    @precondition(lambda self: bool(self.provider.tasks))
    @rule(data=st.data(), change=st.sampled_from(["fails", "goes stale"]))
    def a_task_changes_at_the_provider(self, data: st.DataObject, change: str) -> None:
        """An unfinished task will fail; or a queued task's next "queued" answer is its last: by the next request
        about it, it has finished."""
        wanted = ("queued", "running") if change == "fails" else ("queued",)
        tasks = [t for t in sorted(self.provider.tasks) if self._state(t) in wanted]
        if not tasks:
            return
        task_id = data.draw(st.sampled_from(tasks))
        if change == "fails":
            self.provider.outcomes[task_id] = "FAILED"
        else:
            self.provider.goes_stale.add(task_id)

    @rule(archived=st.sampled_from([None, None, None, *KEYS]), reads_fail=st.sampled_from([False, False, True]))
    def storage_weather(self, archived: str | None, reads_fail: bool) -> None:
        """A lifecycle rule moves a key's object to an archive storage class (until it is uploaded again); image
        reads fail in a way no adapter classifies (say, a missing permission) until the weather changes."""
        if archived is not None and (BUCKET, archived) in self.storage.objects:
            self.storage.archived.add((BUCKET, archived))
        self.storage.read_fault = reads_fail

    @precondition(lambda self: bool(self.uploads))
    @rule(data=st.data(), crash=crash_points)
    def a_broken_reupload_over_a_key_with_a_job(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        """A broken file uploaded over a key whose older upload is live or delivered: rejected, it replaces nothing."""
        key = data.draw(st.sampled_from(sorted({u.key for u in self.uploads})))
        self.upload(key, False, crash)

    # --- invocations, possibly crashing or interleaved ------------------------------------------------
    @precondition(lambda self: bool(self.uploads))
    @rule(data=st.data(), crash=crash_points)
    def deliver_an_event_again(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        """Any earlier upload's event, again or late: S3 delivers at least once and out of order."""
        upload = data.draw(st.sampled_from(self.uploads))
        self._invoke(lambda owner: accept_upload(upload, self.runtime, owner=owner), crash)

    @rule(crash=crash_points)
    def poll(self, crash: CrashPoint | None) -> None:
        self._invoke(self._poll, crash)

    @precondition(lambda self: bool(self.uploads))
    @rule(data=st.data(), pause_at=st.integers(1, 12))
    def two_invocations_at_once(self, data: st.DataObject, pause_at: int) -> None:
        """A submit or poll is paused at its n-th adapter call while a whole poll runs, then resumes."""
        upload = data.draw(st.sampled_from(self.uploads))
        first: Callable[[str], object] = data.draw(
            st.sampled_from(
                [lambda owner: accept_upload(upload, self.runtime, owner=owner), self._poll],
            )
        )

        def run_second() -> None:
            # The first invocation stands still at its n-th adapter call while a whole poll runs.
            self._invoke(self._poll_in_another_container, None, nested=True)

        self.calls.pause_at, self.calls.on_pause = pause_at, run_second
        self._invoke(first, None)
        self.calls.pause_at, self.calls.on_pause = None, None

    @precondition(lambda self: bool(self.store.items))
    @rule(data=st.data())
    def operator_retries_an_uncertain_job_that_was_never_created(self, data: st.DataObject) -> None:
        """A person checks the provider's console, sees no task, and runs `seedance-pipeline jobs retry`."""
        candidates = [
            job
            for job in self.store.jobs()
            if job.status is JobStatus.FAILED
            and job.error is not None
            and job.error.code == ErrorCode.SUBMISSION_UNCERTAIN
            and not self._tasks_for(self._image_identity(job))
        ]
        if candidates:
            job = data.draw(st.sampled_from(candidates))
            retry_job(self.store, job.job_id, now=self.clock())
            self.retries.append(((job.source_key, job.source_etag or ""), len(self.provider.posts)))

    def _image_identity(self, job: Job) -> tuple[str, str]:
        """The image a job's task would name: its upload, or for a batch row the row's own image."""
        if job.batch is None:
            return job.source_key, job.source_etag or ""
        key = job.batch.image_keys[0]
        return key, self.storage.objects[(BUCKET, key)][2] if (BUCKET, key) in self.storage.objects else ""

    def _new_runtime(self, fake_runtime: Runtime, store: MachineStore) -> Runtime:
        """One Lambda container: its own provider cache and delivery slots, over the shared adapters."""
        return Runtime(
            settings=fake_runtime.settings,
            clock=self.clock,
            sleep=self._sleep,
            storage=cast(ObjectStoragePort, Faulty(self.storage, self.calls)),
            store=cast(JobStorePort, Faulty(store, self.calls)),
            downloader=cast(ResultDownloaderPort, Faulty(self.downloads, self.calls)),
            events=cast(EventPublisherPort, Faulty(fake_runtime.events, self.calls)),
            provider_factory=lambda _force: cast(ProviderPort, Faulty(self.provider, self.calls)),
            signing_key=fake_runtime.signing_key,
            callback_reader=fake_runtime.callback_reader,
            handoff=fake_runtime.handoff,
        )

    def _sleep(self, seconds: float) -> None:
        self.slept += 1
        self.clock.advance(seconds)

    def _deliverer(self, upload: Upload) -> Callable[[str], object]:
        return lambda owner: accept_upload(upload, self.runtime, owner=owner)

    def _poll(self, owner: str) -> object:
        return run_poll(self.runtime, owner=owner, time_left=lambda: 300.0)

    def _poll_in_another_container(self, owner: str) -> object:
        return run_poll(self.other_runtime, owner=owner, time_left=lambda: 300.0)

    def _invoke(self, body: Callable[[str], object], crash: CrashPoint | None, *, nested: bool = False) -> None:
        self.invocations += 1
        owner = f"invocation-{self.invocations}"
        outer = (self.calls.calls, self.calls.crash_at, self.calls.crashed)
        self.calls.calls, self.calls.crash_at, self.calls.crashed = 0, crash, False
        if not nested:
            self.could_deliver_at_step_start = {j.job_id for j in self.store.jobs() if _can_deliver(j)}
        try:
            body(owner)
        except Crash:
            pass
        except (ClientError, PermissionError):
            # A store write refused, or S3 refusing a batch file's read (the storage weather's AccessDenied): the
            # submit invocation fails, and Lambda delivers its event again (teardown redelivers every event).
            pass
        finally:
            self.calls.calls, self.calls.crash_at, self.calls.crashed = outer if nested else (0, None, False)

    # --- invariants -----------------------------------------------------------------------------------
    def _tasks_for(self, identity: tuple[str, str]) -> list[str]:
        return [task_id for task_id, task in self.provider.tasks.items() if upload_identity(task["body"]) == identity]

    def _state(self, task_id: str) -> str:
        return self.provider.state_of(task_id, request=False)

    # Checked as each job is written (MachineStore), where the decision lands; None when the write is fine.
    def _never_called_never_submitted_once_sent(self, before: Job | None, job: Job) -> str | None:
        if before is None or not before.submission_started_at or before.task_id is not None:
            return None
        if job.error is not None and job.error.code == ErrorCode.NEVER_SUBMITTED:
            return (
                f"job {job.job_id} was sent at {before.submission_started_at} with no answer recorded, then ended "
                f"NEVER_SUBMITTED ({job.error.message}): its task may exist and be billed"
            )
        return None

    def _superseded_only_by_an_upload_that_can_deliver(self, before: Job | None, job: Job) -> str | None:
        if job.error is None or job.error.code != ErrorCode.SUPERSEDED or (before and before.status.is_terminal):
            return None
        newer = self._newer_uploads(job)
        if any(_can_deliver(n) or n.job_id in self.could_deliver_at_step_start for n in newer):
            return None
        states = {n.job_id: f"{n.status.value} {n.error.code if n.error else ''}" for n in newer}
        return f"job {job.job_id} ended SUPERSEDED, though no newer upload can deliver ({states}): {job.error.message}"

    def _newer_uploads(self, job: Job) -> list[Job]:
        """The jobs of later uploads of the job's key (by S3 sequencer)."""
        mine = int(job.source_sequencer or "0", 16)
        return [
            other
            for other in self.store.jobs()
            if other.source_key == job.source_key and int(other.source_sequencer or "0", 16) > mine
        ]

    def _a_delivery_retry_waits_for_its_time(self, before: Job | None, job: Job) -> str | None:
        """However many callbacks arrive, and whatever a worker read before another's failed attempt, no worker
        retries a delivery before its time (the lease is taken only on the due time as read)."""
        if before is None or before.delivery_attempts == 0 or job.delivery_attempts <= before.delivery_attempts:
            return None
        due = before.next_check_at
        if due is not None and self.clock() < due:
            return f"job {job.job_id}: delivery attempt {job.delivery_attempts} at {self.clock()}, scheduled for {due}"
        return None

    def _a_delete_has_a_reason(self, task_id: str) -> None:
        """Called by the provider as a DELETE arrives: only a job past its age limit, or replaced by a newer upload
        that can still deliver, cancels its task."""
        holder = next((j for j in self.store.jobs() if j.task_id == task_id), None)
        if holder is None:
            self.store.violations.append(f"a DELETE of task {task_id}, which no job holds")
            return
        limit = self.fake_runtime.settings.max_job_age_seconds
        aged = self.clock() - (holder.submitted_at or holder.created_at) > limit
        newer = self._newer_uploads(holder)
        replaced = any(_can_deliver(n) or n.job_id in self.could_deliver_at_step_start for n in newer)
        if not (aged or replaced):
            states = {n.job_id: f"{n.status.value} {n.error.code if n.error else ''}" for n in newer}
            self.store.violations.append(
                f"job {holder.job_id} sent a DELETE for task {task_id}: not past its age, and no newer upload can "
                f"deliver ({states})"
            )

    @invariant()
    def no_rule_was_broken_as_a_job_was_written(self) -> None:
        assert not self.store.violations, "\n".join(self.store.violations)

    @invariant()
    def a_body_that_may_have_left_is_never_sent_again(self) -> None:
        posts = self.provider.posts
        for n, (identity, at, fault) in enumerate(posts):
            if fault not in MAY_HAVE_LEFT:
                continue
            again = next((m for m in range(n + 1, len(posts)) if posts[m][0] == identity), None)
            if again is None:
                continue
            retried = any(ident == identity and n < mark <= again for ident, mark in self.retries)
            assert retried, (
                f"{identity} was POSTed again at {posts[again][1]} after a POST at {at} ({fault or 'answered'}) that "
                "may have made its task, and no person retried it"
            )

    @invariant()
    def a_job_whose_body_may_have_left_is_never_called_never_submitted(self) -> None:
        for job in self.store.jobs():
            if job.error is None or job.error.code != ErrorCode.NEVER_SUBMITTED:
                continue
            identity = (job.source_key, job.source_etag or "")
            since = max((mark for ident, mark in self.retries if ident == identity), default=0)
            sent = [
                at for ident, at, fault in self.provider.posts[since:] if ident == identity and fault in MAY_HAVE_LEFT
            ]
            assert not sent, f"job {job.job_id} ended NEVER_SUBMITTED, though its body was POSTed at {sent}"

    @invariant()
    def a_paid_video_is_kept_where_a_person_finds_it(self) -> None:
        jobs = self.store.jobs()
        sidecars = [json.loads(data) for (_, key), data in self.storage.uploads.items() if key.endswith(".json")]
        vouched_for = {sidecar["job_id"] for sidecar in sidecars}
        for job in jobs:
            task_id = job.task_id
            if not job.status.is_terminal or task_id not in self.provider.reported_succeeded:
                continue
            said = job.error.message if job.error else ""
            if "gave up after" in said or (job.status is JobStatus.TIMED_OUT and "last problem" in said):
                continue  # the CDN refused every attempt, or the provider never answered again: said on the job
            video = b"video-of:" + f"{task_id}.mp4".encode()
            kept_at = {key for (_, key), data in self.storage.uploads.items() if data == video}
            named = {job.outputs.video_key} if job.outputs else set()
            named |= {key for key in kept_at if key in said}
            named |= {sidecar["outputs"]["video"] for sidecar in sidecars if sidecar.get("task_id") == task_id}
            if kept_at & named:
                continue
            # A newer upload of the key that delivered wrote its own video over this one's: the newest wins. Delivered
            # is the sidecar switch: a delivery that dies after it (and after retiring this video) but before its job
            # is recorded SUCCEEDED has delivered all the same; the next check records it.
            replaced = job.outputs is not None and any(
                j.source_key == job.source_key
                and (j.status is JobStatus.SUCCEEDED or j.job_id in vouched_for)
                and self._upload_order(j.source_key, j.job_id) > self._upload_order(job.source_key, job.job_id)
                for j in jobs
            )
            assert replaced, (
                f"job {job.job_id} is {job.status.value}: the provider answered task {task_id} succeeded (billed), "
                f"but its video is not kept where the job, its error or a sidecar names it (kept at {kept_at}; {said})"
            )

    @invariant()
    def no_job_is_terminal_without_a_reason(self) -> None:
        for job in self.store.jobs():
            if job.status is JobStatus.SUCCEEDED:
                assert job.outputs is not None and job.error is None, f"job {job.job_id} SUCCEEDED without outputs"
            elif job.status.is_terminal:
                assert job.error and job.error.code and job.error.message.strip(), (
                    f"job {job.job_id} is {job.status.value} without a reason: {job.error}"
                )

    @invariant()
    def a_delete_never_reaches_a_finished_task_and_cancelled_means_read_cancelled(self) -> None:
        assert not self.provider.deleted_finished, (
            f"a DELETE deleted the record (and video) of finished tasks {self.provider.deleted_finished}"
        )
        for job in self.store.jobs():
            said = [n for n in [*job.notes, job.error.message if job.error else ""] if "was cancelled" in n]
            assert not said or job.task_id in self.provider.cancelled, (
                f"job {job.job_id} says {said}, but task {job.task_id} reads {self._state(job.task_id or '')}"
            )

    @invariant()
    def at_most_one_provider_task_per_upload(self) -> None:
        per_upload: dict[tuple[str, str], list[str]] = {}
        for task_id, task in self.provider.tasks.items():
            per_upload.setdefault(upload_identity(task["body"]), []).append(task_id)
        # No exception for retried jobs: an operator retries only an upload the provider never made a task for. A
        # task whose POST was answered with an error is not known to the pipeline (unless a callback names it).
        per_upload = {u: [t for t in ts if t not in self.provider.unknowable] for u, ts in per_upload.items()}
        paid_twice = {u: t for u, t in per_upload.items() if len(t) > 1}
        assert not paid_twice, f"paid more than once: {paid_twice}"

    @invariant()
    def no_two_jobs_share_a_task_and_each_task_is_its_own_uploads(self) -> None:
        holders: dict[str, list[str]] = {}
        for job in self.store.jobs():
            if job.task_id is None:
                continue
            holders.setdefault(job.task_id, []).append(job.job_id)
            made_for = upload_identity(self.provider.tasks[job.task_id]["body"])
            if job.batch is not None:
                # A batch row's image is read by its key (the row names no version): the key is its identity.
                assert made_for[0] == job.batch.image_keys[0], (
                    f"row job {job.job_id} ({job.batch.image_keys[0]}) holds task {job.task_id}, made for {made_for}"
                )
                continue
            assert made_for == (job.source_key, job.source_etag), (
                f"job {job.job_id} ({job.source_key}, {job.source_etag}) holds task {job.task_id}, made for {made_for}"
            )
        shared = {task: jobs for task, jobs in holders.items() if len(jobs) > 1}
        assert not shared, f"jobs sharing a task: {shared}"

    @invariant()
    def slots_are_held_by_every_job_live_at_the_provider(self) -> None:
        holders = self.store.slot_holders()
        live = {job.job_id for job in self.store.jobs() if job.status in LIVE_AT_PROVIDER}
        assert live <= holders, f"live at the provider without a slot: {live - holders}"
        assert len(holders) <= MAX_IN_FLIGHT, f"{len(holders)} slots held, limit {MAX_IN_FLIGHT}"

    @invariant()
    def visible_outputs_are_one_jobs_complete_set(self) -> None:
        jobs = {job.job_id: job for job in self.store.jobs()}
        writers: dict[str, set[str]] = {}
        for (_, key), data in self.storage.uploads.items():
            if not key.endswith(".json"):
                continue
            sidecar = json.loads(data)
            job = jobs.get(sidecar["job_id"])
            assert job is not None, f"{key} vouches for an unknown job"
            video = self.storage.uploads.get((BUCKET, sidecar["outputs"]["video"]))
            assert video == b"video-of:" + f"{sidecar['task_id']}.mp4".encode(), (
                f"{key} names {sidecar['outputs']['video']}, which is not the video of its task {sidecar['task_id']}"
            )
            writers.setdefault(sidecar["outputs"]["video"], set()).add(job.source_key)
        shared = {k: v for k, v in writers.items() if len(v) > 1}
        assert not shared, f"output objects written for two source keys: {shared}"

    @invariant()
    def a_keys_outputs_are_never_an_older_uploads_once_a_newer_one_delivered(self) -> None:
        jobs = self.store.jobs()
        for (_, key), data in self.storage.uploads.items():
            if not key.endswith(".json"):
                continue
            shown = json.loads(data)
            shown_at = self._upload_order(shown["source"]["key"], shown["job_id"])
            newer = [
                job.job_id
                for job in jobs
                if job.source_key == shown["source"]["key"]
                and job.status is JobStatus.SUCCEEDED
                and self._upload_order(job.source_key, job.job_id) > shown_at
            ]
            assert not newer, f"{key} shows an older upload's video, though newer {newer} delivered"

    def _every_batch_reported_once(self) -> None:
        """Every batch upload is one batch with one job per row, all ended, reported whole. `Batch Completed` is at
        least once (a crash between the publish and clearing its mark, or a publisher outliving its lease, sends it
        again, docs/batches.md): every copy of a batch's event is the same event, which consumers dedupe on."""
        events = cast(Any, self.runtime.events)._inner.batches
        by_batch: dict[str, list[str]] = {}
        for event in events:
            by_batch.setdefault(event["batch_id"], []).append(json.dumps(event, sort_keys=True))
        for batch_id, copies in by_batch.items():
            assert len(set(copies)) == 1, f"Batch Completed of {batch_id} sent as different events: {copies}"
        for upload, rows in self.batch_uploads:
            batch = [b for b in self.store.batches.values() if b["key"] == upload.key]
            assert len(batch) == 1, f"{upload.key}: {len(batch)} batch records"
            record = batch[0]
            assert record["completed_at"] is not None, f"{upload.key} never completed: {record}"
            report = self.storage.uploads[(BUCKET, f"videos/batch{upload.key[13:-4]}.csv.report.jsonl")]
            lines = [json.loads(line) for line in report.decode().splitlines()]
            assert [line["id"] for line in lines] == [f"r{row}" for row in range(1, rows + 1)]
            # A line is terminal, unless an operator retried that row before the batch's last job ended (a known
            # limit, docs/batches.md: the report says how the row stood when the batch closed).
            for line in lines:
                if line["status"] not in ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"):
                    job = self.store.job(line["job_id"])
                    retried = any(note.startswith("retried by an operator") for note in job.notes)
                    assert retried, f"{line} is not terminal and was not retried"

    def _upload_order(self, key: str, job_id: str) -> int:
        """Which upload of the key (in upload order) a job was made for; the machine's etags count up."""
        job = next(j for j in self.store.jobs() if j.job_id == job_id)
        assert job.source_key == key
        return int((job.source_etag or "etag0").removeprefix("etag"))

    def teardown(self) -> None:
        """With the provider healthy and time past every lease and limit, nothing stays live."""
        self.calls.crash_at = None
        self.provider.submit_fault, self.provider.get_fault = None, False
        self.store.refuse_task_id_write = self.storage.read_fault = self.downloads.fault = False
        for upload in self.uploads:  # Lambda retries a crashed submit invocation's event
            self._invoke(self._deliverer(upload), None)
        # Lambda's later retries come after a crashed batch writer's lease, and the grace after it, ran out.
        self.clock.advance(400 + WRITER_GRACE_SECONDS)
        for upload, _ in self.batch_uploads:
            self._invoke(self._deliverer(upload), None)
        for _ in range(self.settle_rounds):
            self.clock.advance(self.settle_seconds)
            self._invoke(self._poll, None)
            if all(job.status.is_terminal for job in self.store.jobs()):
                break
        jobs = self.store.jobs()
        stuck = [(j.job_id, j.status) for j in jobs if not j.status.is_terminal]
        assert not stuck, f"jobs still live at the end: {stuck}"
        no_reason = [
            j.job_id for j in jobs if j.status is not JobStatus.SUCCEEDED and not (j.error and j.error.message)
        ]
        assert not no_reason, f"terminal without a reason: {no_reason}"
        self._every_batch_reported_once()
        identities = {(u.key, u.etag) for u in self.uploads}
        with_jobs = {(j.source_key, j.source_etag) for j in jobs}
        assert identities <= with_jobs, f"uploads without a job: {identities - with_jobs}"
        assert self.store.slot_holders() == set(), f"slots still held: {self.store.slot_holders()}"
        self.at_most_one_provider_task_per_upload()
        self.visible_outputs_are_one_jobs_complete_set()
        self.a_keys_outputs_are_never_an_older_uploads_once_a_newer_one_delivered()
        self.no_rule_was_broken_as_a_job_was_written()
        self.a_body_that_may_have_left_is_never_sent_again()
        self.a_job_whose_body_may_have_left_is_never_called_never_submitted()
        self.a_paid_video_is_kept_where_a_person_finds_it()
        self.a_delete_never_reaches_a_finished_task_and_cancelled_means_read_cancelled()


def _can_deliver(job: Job) -> bool:
    """A job that is live, or delivered: a newer upload in that state owns its key's outputs."""
    return not job.status.is_terminal or job.status is JobStatus.SUCCEEDED


def machine_settings(make_test_examples: int) -> settings:
    """One machine's run: `make_test_examples` under make test's profile (its time budget), the profile's own
    examples under make fuzz (5,000 for every machine)."""
    profile = settings().max_examples
    examples = profile if profile >= 1000 else make_test_examples
    return settings(max_examples=examples, stateful_step_count=50, deadline=None)


# Crash points are many and each bug needs a few steps in a row, but make test has a time budget: the four machines
# (this file's two, test_job_lifecycle_machine_callbacks.py's two) run twice there (on 3.11, then on the Lambda's
# 3.13, where this file is the step's longest), so each runs a smoke-sized share: 3,000 steps for this one, half that
# for the others. Finding what needs many steps in a row is make fuzz's job: 5,000 examples of each.
JobLifecycle.TestCase.settings = machine_settings(60)
test_job_lifecycle_holds_its_invariants_under_faults_and_crashes = JobLifecycle.TestCase


class ArkJobLifecycle(JobLifecycle):
    """The same machine on the native Ark dialect: a lost create answer is looked up in the task list (FakeProvider
    lists tasks as Ark does: settings and seed, never prompt, images or callback_url) and a queued task is cancelled
    when its job gives up. Its own rule: identical uploads in flight, the second's create answer lost."""

    stack_settings: dict[str, Any] = {"provider_api": "ark", "api_base_url": ""}

    def __init__(self) -> None:
        super().__init__()
        self.provider.can_list = self.provider.can_cancel = True

    @rule(
        keys=st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)),
        task_made=st.booleans(),
        seed=st.sampled_from([None, None, "-1", "7"]),
        crash=crash_points,
    )
    def identical_uploads_in_flight_and_a_lost_create_answer(
        self, keys: tuple[str, str], task_made: bool, seed: str | None, crash: CrashPoint | None
    ) -> None:
        """Upload B is sent; then upload A, with the same settings (the defaults, or one seed both set), loses its
        create answer: a read timeout after its task was made, or a 502 before any was."""
        metadata = {"seed": seed} if seed is not None else {}
        for key, fault in ((keys[0], None), (keys[1], "504" if task_made else "502-no-task")):
            self.etag_counter += 1
            etag = f"etag{self.etag_counter}"
            self.storage.add(BUCKET, key, GOOD_IMAGE, metadata, etag=etag)
            upload = Upload(bucket=BUCKET, key=key, etag=etag, sequencer=f"{self.etag_counter:016X}")
            self.uploads.append(upload)
            self.provider.submit_fault = fault
            self._invoke(self._deliverer(upload), crash if fault else None)
            self.clock.advance(5)
        self.provider.submit_fault = None


ArkJobLifecycle.TestCase.settings = machine_settings(30)
test_ark_job_lifecycle_holds_its_invariants_with_lost_answers_among_identical_uploads = ArkJobLifecycle.TestCase


class _DiesAfterSidecar(FakeStorage):
    """The process dies (no except-branch runs) right after the sidecar's PutObject, before the job is recorded."""

    dies = False

    def put_json(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        super().put_json(bucket, key, document)
        if self.dies:
            self.dies = False
            raise Crash(f"after PutObject {key}")


def test_a_video_a_replaced_job_says_it_kept_is_never_deleted_by_the_newer_uploads_delivery():
    """Found by the machine (a_paid_video_is_kept_where_a_person_finds_it, Ark fuzz run): a delivery that died after
    writing its sidecar is checked again once a newer upload of the key is live; it keeps its video at its own key
    and says so in its error, but that key is the one its own sidecar names, so the newer upload's delivery retires
    it as the replaced outputs: the paid video is deleted while the job's error points to it."""
    storage = _DiesAfterSidecar()
    runtime, store, _, _ = make_runtime(storage=storage, max_in_flight=2)
    storage.add(BUCKET, "uploads/c.jpg", GOOD_IMAGE, etag="e1")
    older = accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e1", sequencer="01"), runtime, owner="s")
    runtime.clock.advance(60)
    storage.dies = True
    with contextlib.suppress(Crash):
        run_poll(runtime, owner="dies", time_left=lambda: 300.0)
    assert (BUCKET, "videos/c.jpg.json") in storage.uploads and not store.job(older.job_id).status.is_terminal
    runtime.clock.advance(400)  # past the dead invocation's lease
    storage.add(BUCKET, "uploads/c.jpg", GOOD_IMAGE, etag="e2")
    accept_upload(Upload(bucket=BUCKET, key="uploads/c.jpg", etag="e2", sequencer="02"), runtime, owner="s")
    for _ in range(10):  # the older job is checked again while the newer one's task still runs, then the newer delivers
        runtime.clock.advance(5)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)

    job = store.job(older.job_id)
    said = job.error.message if job.error else ""
    named = re.findall(rf"s3://{BUCKET}/(\S+\.mp4)", said)
    missing = [key for key in named if (BUCKET, key) not in storage.uploads]
    assert not missing, f"job {job.job_id} ({job.status.value}) says its paid video is kept at {missing}: {said}"


def test_a_delivery_that_dies_after_retiring_the_older_uploads_video_is_a_replacement_not_a_lost_video():
    """Found by the machine (a_paid_video_is_kept_where_a_person_finds_it, callbacks fuzz run on 2bc7683), a false
    alarm: a newer upload's delivery switches the key's sidecar to its own complete set, retires the older upload's
    video, then dies before its job is recorded SUCCEEDED. The older job's video is gone because a newer upload
    delivered (its sidecar says so), not lost: the invariant must count that sidecar as the newer upload's delivery,
    and the next poll records the newer job SUCCEEDED with the set its sidecar names."""
    state = JobLifecycle()
    state.upload("uploads/a.jpg", True, None)
    for _ in range(3):
        state.clock.advance(60)
        state.poll(None)
    older = state.store.jobs()[0]
    assert older.status is JobStatus.SUCCEEDED and older.outputs is not None
    state.upload("uploads/a.jpg", True, None)
    newer = next(j for j in state.store.jobs() if j.job_id != older.job_id)
    state.clock.advance(60)  # the newer task has finished at the provider
    state.storage.delete = _dies_after(state.storage.delete)  # type: ignore[method-assign,assignment]
    state.poll(None)

    sidecar = json.loads(state.storage.uploads[(BUCKET, older.outputs.sidecar_key)])
    newer_now = state.store.job(newer.job_id)
    assert (BUCKET, older.outputs.video_key) not in state.storage.uploads, "the retire did not run before the crash"
    assert sidecar["job_id"] == newer.job_id and (BUCKET, sidecar["outputs"]["video"]) in state.storage.uploads
    assert newer_now.status is not JobStatus.SUCCEEDED, "the crash came after the newer job was recorded"
    state.a_paid_video_is_kept_where_a_person_finds_it()

    state.teardown()  # past the dead invocation's lease, a poll records the newer job as its sidecar has it
    delivered = state.store.job(newer.job_id)
    assert delivered.status is JobStatus.SUCCEEDED and delivered.outputs is not None
    assert delivered.outputs.video_key == sidecar["outputs"]["video"]


def _dies_after(delete: Callable[[str, str], None]) -> Callable[[str, str], None]:
    """The process dies right after its first DeleteObject (no except-branch runs)."""
    died: list[str] = []

    def dying(bucket: str, key: str) -> None:
        delete(bucket, key)
        if not died:
            died.append(key)
            raise Crash(f"after DeleteObject {key}")

    return dying
