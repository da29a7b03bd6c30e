"""The world the job lifecycle machines (tests/unit/test_job_lifecycle_machine*.py) run in: adapter calls that can
crash or pause an invocation, and fakes with scripted faults. The provider's tasks are queued, then running, then
done; its DELETE follows Ark's documented rules (docs/provider-api.md); the store watches each job write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError
from hypothesis import strategies as st

from seedance_pipeline.errors import (
    ObjectArchived,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
    ResultUnavailable,
    SubmissionUncertain,
)
from seedance_pipeline.models import Job, ProviderState, TaskResult
from tests.support.fakes import FakeClock, FakeDownloader, FakeProvider, FakeStorage, FakeStore


class Crash(BaseException):
    """The Lambda process dies: nothing after this point runs, no except-branch of ours sees it."""


# A crash point is "the n-th adapter call of the invocation, before or after it": a submit invocation makes about
# eight calls and a poll a dozen or more per job, so small n reach every step of either.
CrashPoint = tuple[int, bool]
crash_points = st.none() | st.tuples(st.integers(1, 12), st.booleans())


class AdapterCalls:
    """Counts one invocation's adapter calls; can crash, or pause for another invocation, at the n-th."""

    def __init__(self) -> None:
        self.calls = 0
        self.crash_at: CrashPoint | None = None
        # Once crashed, the process is dead: no thread of it (a poll's worker pool) makes another call. Without
        # this, whether a pool worker still checks the next job after the crash depends on thread timing, and
        # Hypothesis cannot replay (FlakyStrategyDefinition) what it found.
        self.crashed = False
        self.pause_at: int | None = None
        self.on_pause: Callable[[], None] | None = None

    def around(self, name: str, call: Callable[[], Any]) -> Any:
        if self.crashed:
            raise Crash(f"{name} in a process that has crashed")
        self.calls += 1
        if self.pause_at == self.calls and self.on_pause is not None:
            pause, self.on_pause = self.on_pause, None
            pause()
        crash = self.crash_at is not None and self.crash_at[0] == self.calls
        if crash and not self.crash_at[1]:  # type: ignore[index]
            self.crashed = True
            raise Crash(f"before {name} (call {self.calls})")
        result = call()
        if crash:
            self.crashed = True
            raise Crash(f"after {name} (call {self.calls})")
        return result


class Faulty:
    """Wraps an adapter (fake) so every public method call goes through AdapterCalls."""

    def __init__(self, inner: Any, calls: AdapterCalls) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_calls", calls)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        return lambda *args, **kwargs: self._calls.around(name, lambda: value(*args, **kwargs))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


class ScriptedStorage(FakeStorage):
    """Presigned URLs name the object's ETag, so every provider task can be traced to the upload it paid for. An
    archived key answers GetObject as S3 does (403 InvalidObjectState) until it is uploaded again; `read_fault` is a
    fault no adapter classifies (a missing permission) on every image read."""

    def __init__(self) -> None:
        super().__init__()
        self.archived: set[tuple[str, str]] = set()
        self.read_fault = False

    def add(
        self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None, etag: str = "e1"
    ) -> str | None:
        self.archived.discard((bucket, key))
        return super().add(bucket, key, data, metadata, etag=etag)

    def read(self, bucket: str, key: str, **kwargs: Any) -> Any:
        if (bucket, key) in self.archived:
            raise ObjectArchived(f"s3://{bucket}/{key} is in an archive storage class (InvalidObjectState)")
        if self.read_fault:
            raise PermissionError("AccessDenied on GetObject")
        return super().read(bucket, key, **kwargs)

    def presign_get(self, bucket: str, key: str, *, version_id: str | None, expires_in: int) -> str:
        etag = self.objects[(bucket, key)][2]
        return f"https://{bucket}.s3.amazonaws.com/{key}?etag={etag}&X-Amz-Signature=fake"


# POSTs the provider may have received and made a task for: sent again, they could pay twice.
MAY_HAVE_LEFT = (None, "504", "unreadable-2xx", "reset-after-send", "502-no-task")
RUN_SECONDS = 25.0


class ScriptedProvider(FakeProvider):
    """Per-task outcomes and queue times, faults that refuse the POST or take it and lose the answer, and Ark's
    task endpoint: a task is queued, then running, then done; DELETE cancels a queued task, is refused for a running
    or cancelled one, and deletes a finished one's record (its video with it), answering 2xx to both."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, ready_after=40.0)
        self.outcomes: dict[str, str] = {}
        self.submit_fault: str | None = None
        self.get_fault = False
        self.queue_seconds = 15.0  # for tasks made from now on
        # Every POST that reached the provider, task made or not: (upload identity, time, fault).
        self.posts: list[tuple[tuple[str, str], float, str | None]] = []
        self.reported_succeeded: set[str] = set()
        self.deleted: set[str] = set()
        self.deleted_finished: list[str] = []
        # Tasks a POST made though its answer was an error (a gateway that forwarded, then timed out upstream).
        self.unknowable: set[str] = set()
        # A task whose next "queued" answer goes stale: it is finished by the request after that answer.
        self.goes_stale: set[str] = set()
        self.stale: set[str] = set()
        self.finished_early: set[str] = set()
        self.on_cancel: Callable[[str], None] | None = None

    def submit(self, body: dict[str, Any], *, deadline: float | None = None) -> str:
        fault, self.submit_fault = self.submit_fault, None
        self.posts.append((upload_identity(body), self.clock(), fault))
        if fault == "429":
            raise ProviderThrottled("HTTP 429 ModelAccountRpmRateLimitExceeded", retry_after=5)
        if fault == "503":
            raise ProviderUnavailable("HTTP 503 ServerOverloaded")
        if fault == "502-no-task":
            # A gateway in front of the platform answers 502 and never passed the request on: no task, no answer.
            raise SubmissionUncertain("HTTP 502: the provider may have created the task")
        task_id = super().submit(body, deadline=deadline)
        self.tasks[task_id]["queued_for"] = self.queue_seconds
        if fault == "503-forwarded":
            self.unknowable.add(task_id)
            raise ProviderUnavailable("HTTP 503: the gateway timed out upstream")
        if fault in ("504", "unreadable-2xx", "reset-after-send"):
            # The task exists and is billed; the answer is lost on the way back.
            raise SubmissionUncertain(f"{fault}: the provider may have created the task")
        return task_id

    def state_of(self, task_id: str, *, request: bool = True) -> str:
        """The task's state; `request`: a request about it is being answered (not the machine looking)."""
        if task_id in self.deleted:
            return "deleted"
        if task_id in self.cancelled:
            return "cancelled"
        if task_id in self.stale and request:  # a request after the stale answer: the task finished meanwhile
            self.stale.discard(task_id)
            self.finished_early.add(task_id)
        task = self.tasks[task_id]
        age = self.clock() - task["at"]
        if task_id not in self.finished_early and age < task["queued_for"]:
            return "queued"
        if task_id not in self.finished_early and age < task["queued_for"] + RUN_SECONDS:
            return "running"
        return "failed" if self.outcomes.get(task_id) == "FAILED" else "succeeded"

    def get(self, task_id: str, *, deadline: float | None = None) -> TaskResult:
        self.gets += 1
        if self.get_fault:
            raise ProviderUnavailable("HTTP 502 on a status check")
        if task_id not in self.tasks or task_id in self.deleted:
            raise ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound")
        state = self.state_of(task_id)
        if state == "queued":
            if task_id in self.goes_stale:
                self.goes_stale.discard(task_id)
                self.stale.add(task_id)
            return TaskResult(task_id=task_id, state=ProviderState.PENDING, raw_status="queued")
        if state == "running":
            return TaskResult(task_id=task_id, state=ProviderState.RUNNING, raw_status="running")
        if state == "cancelled":
            # As the client reads a failed task with no error field (unified_dialect: "without a reason").
            return TaskResult(
                task_id=task_id,
                state=ProviderState.FAILED,
                raw_status="cancelled",
                failure_reason="the provider reported cancelled without a reason",
            )
        if state == "failed":
            return TaskResult(
                task_id=task_id, state=ProviderState.FAILED, raw_status="failed", failure_reason="moderation"
            )
        self.reported_succeeded.add(task_id)
        return TaskResult(
            task_id=task_id,
            state=ProviderState.SUCCEEDED,
            raw_status="succeeded",
            video_url=f"https://cdn.example.com/{task_id}.mp4",
        )

    def cancel(self, task_id: str, *, deadline: float | None = None) -> bool:
        if not self.can_cancel:
            return False
        self.cancels.append(task_id)
        if self.on_cancel is not None:
            self.on_cancel(task_id)
        state = "deleted" if task_id not in self.tasks else self.state_of(task_id)
        if state == "queued":
            self.cancelled.add(task_id)
            return True
        if state == "deleted":
            raise ProviderRejected("HTTP 404 ResourceNotFound: the task does not exist", code="ResourceNotFound")
        if state in ("running", "cancelled"):
            raise ProviderRejected(f"HTTP 400 TaskNotCancellable: the task is {state}", code="TaskNotCancellable")
        self.deleted.add(task_id)
        self.deleted_finished.append(task_id)
        return True


class MachineStore(FakeStore):
    """FakeStore that judges each job write against the job as stored before it (the poller logs and survives any
    exception, so a broken rule is recorded in `violations` for an invariant to report), and can refuse, as
    DynamoDB's throttling would, the one write that records a task id after its POST."""

    def __init__(self) -> None:
        super().__init__(due_shards=2)
        self.violations: list[str] = []
        self.watchers: list[Callable[[Job | None, Job], str | None]] = []
        self.refuse_task_id_write = False

    def save(self, job: Job, *, owner: str, due_shard: str | None, expires_at: float | None = None) -> None:
        if self.refuse_task_id_write and job.task_id is not None:
            before = self.get(job.job_id)
            if before is not None and before.task_id is None:
                self.refuse_task_id_write = False
                error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}
                raise ClientError(error, "PutItem")  # type: ignore[arg-type]
        super().save(job, owner=owner, due_shard=due_shard, expires_at=expires_at)

    def _put(self, job: Job, due_shard: str | None, expires_at: float | None = None) -> None:
        before = self.get(job.job_id)
        for watch in self.watchers:
            problem = watch(before, job)
            if problem:
                self.violations.append(problem)
        super()._put(job, due_shard, expires_at)


class Downloads(FakeDownloader):
    """Each task's video is its own bytes, so a visible object can be traced to the task that made it; `fault`: the
    result CDN answers 503."""

    fault = False

    def open(self, url: str, *, max_bytes: int, **_: Any) -> Any:
        import io

        if self.fault:
            raise ResultUnavailable("the result URL answered 503")
        return io.BytesIO(b"video-of:" + url.rsplit("/", 1)[-1].encode())


def upload_identity(body: dict[str, Any]) -> tuple[str, str]:
    """The upload a provider body was made for, from its first image URL (the gateway's list, or Ark's content)."""
    if "images" in body:
        url = body["images"][0]
    else:
        url = next(part["image_url"]["url"] for part in body["content"] if part.get("type") == "image_url")
    parts = urlsplit(url)
    return parts.path.lstrip("/"), parse_qs(parts.query)["etag"][0]
