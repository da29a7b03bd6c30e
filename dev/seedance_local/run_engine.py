"""Runs planned uploads through the local pipeline (simulator, or the real provider with SEEDANCE_API_KEY), waits
with a progress line that shows each job's last problem, and builds the results table."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from seedance_local.cli_common import UsageError, logs_to
from seedance_local.run_uploads import PlannedUpload
from seedance_pipeline.logic.batch_report import batch_job_ids
from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.rules.batch_files import is_batch_file
from seedance_pipeline.settings import BYTEPLUS_ARK_BASE_URL, VOLCENGINE_ARK_BASE_URL

SIMULATED_RUN_SECONDS = 1.5
SIMULATED_TIMEOUT_SECONDS = 120.0
# A 10-second 1080p video takes the real provider a few minutes, more behind a queue; 20 minutes covers a handful.
REAL_PROVIDER_TIMEOUT_SECONDS = 20 * 60.0
# Every job waiting on the same provider error for this long (an unreachable host, a wrong key): stop waiting.
STUCK_SECONDS = 90.0


@dataclass
class ProviderChoice:
    api_key: str
    base_url: str | None  # None: start the simulator, whose URL is known once it listens
    description: str
    provider_api: str = "unified"

    @property
    def simulated(self) -> bool:
        return self.base_url is None

    def pipeline_settings(self) -> dict[str, str]:
        """Environment overrides for the handlers, per provider."""
        chosen = dict(SIMULATOR_SETTINGS if self.simulated else REAL_PROVIDER_SETTINGS)
        return {**chosen, "PROVIDER_API": self.provider_api}


# The simulator renders in seconds, so the checks come 20x sooner, and short poll windows keep the progress bar
# moving. It listens on loopback, so downloads from private addresses must be allowed.
SIMULATOR_SETTINGS = {"CHECK_SCHEDULE_SCALE": "0.05", "POLL_WINDOW_SECONDS": "2", "ALLOW_PRIVATE_DOWNLOADS": "true"}
# The real provider cannot fetch a presigned URL of a local moto server, so the image goes inline. Its result
# URLs are public, so the deployed stack's download rule (https, public addresses only) applies.
REAL_PROVIDER_SETTINGS = {
    "CHECK_SCHEDULE_SCALE": "1",
    "POLL_WINDOW_SECONDS": "10",
    "IMAGE_DELIVERY": "data-url",
    "ALLOW_PRIVATE_DOWNLOADS": "false",
}


def choose_provider(environ: Mapping[str, str] = os.environ, *, api: str | None = None) -> ProviderChoice:
    """The simulator, or the real provider when SEEDANCE_API_KEY is set; `api` (from --api) wins over
    SEEDANCE_PROVIDER_API."""
    provider_api = api or environ.get("SEEDANCE_PROVIDER_API", "").strip().lower() or "unified"
    api_key = environ.get("SEEDANCE_API_KEY", "").strip()
    if not api_key:
        if provider_api not in ("unified", "ark"):
            raise UsageError(f"SEEDANCE_PROVIDER_API is {provider_api!r}; allowed: unified or ark")
        # A fresh key per run: nothing outside this process can use the simulator, and the key is never shown.
        description = f"local Seedance simulator ({provider_api} dialect)"
        return ProviderChoice(secrets.token_urlsafe(32), None, description, provider_api)
    if provider_api not in ("unified", "ark"):
        raise UsageError(f"SEEDANCE_PROVIDER_API is {provider_api!r}; allowed: unified or ark")
    base_url = environ.get("SEEDANCE_API_BASE_URL", "").strip()
    if not base_url and provider_api == "ark":
        base_url = VOLCENGINE_ARK_BASE_URL
    if not base_url:
        raise UsageError(
            "SEEDANCE_API_BASE_URL is not set: set it to your gateway's base URL, or set SEEDANCE_PROVIDER_API=ark "
            f"for a Volcengine Ark key ({VOLCENGINE_ARK_BASE_URL}; BytePlus: SEEDANCE_API_BASE_URL="
            f"{BYTEPLUS_ARK_BASE_URL})"
        )
    description = f"Seedance API ({provider_api}) at {base_url} (SEEDANCE_API_KEY)"
    return ProviderChoice(api_key, base_url.rstrip("/"), description, provider_api)


# --- running the pipeline ---------------------------------------------------------------------------------------


@dataclass
class JobResult:
    label: str
    status: str
    task_id: str | None = None
    seconds: float | None = None
    video: Path | None = None
    error: str | None = None
    files: list[Path] = field(default_factory=list)
    arrived: str | None = None  # "callback" or "poll": what found the finished task

    @property
    def succeeded(self) -> bool:
        return self.status == JobStatus.SUCCEEDED.value


def stack_parameters(provider: ProviderChoice, callbacks: bool) -> tuple[dict[str, str], str]:
    """Template parameters for the local stack, and a line saying whether callbacks are on and why."""
    if not callbacks:
        return {"CallbackMode": "off"}, "Callbacks: off (--no-callbacks); the poller finds each finished video."
    if not provider.simulated:
        return {"CallbackMode": "off"}, (
            "Callbacks: off; the real provider cannot reach a Function URL on this machine, so the poller finds "
            "each finished video."
        )
    # The gateway dialect carries the URL in a field the stack names; the simulator reads "callback_url".
    field_name = {"CallbackField": "callback_url"} if provider.provider_api == "unified" else {}
    return {"CallbackMode": "on", **field_name}, (
        "Callbacks: on; the simulator POSTs each status change to the local Function URL, and the poller stays "
        "as the safety net (--no-callbacks to poll only)."
    )


def run_pipeline(
    uploads: list[PlannedUpload],
    out: Path,
    console: Console,
    *,
    timeout: float | None,
    api: str | None = None,
    callbacks: bool = True,
) -> list[JobResult]:
    from seedance_local.harness import LocalPipeline
    from seedance_local.local_stack import LocalStack
    from seedance_simulator import Knobs, SimulatorServer

    provider = choose_provider(api=api)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "pipeline.log"
    parameters, callback_line = stack_parameters(provider, callbacks)
    console.print(f"Provider: {provider.description}. Handler logs: {log_path}")
    console.print(callback_line, highlight=False)
    with contextlib.ExitStack() as resources_held, log_path.open("a", encoding="utf-8") as log:
        with console.status("Starting the local AWS stack (moto) from template.yaml..."), logs_to(log):
            stack = resources_held.enter_context(LocalStack.start(api_key=provider.api_key, parameters=parameters))
            base_url = provider.base_url
            if base_url is None:
                knobs = Knobs(run_seconds=SIMULATED_RUN_SECONDS, queue_seconds=0)
                simulator = resources_held.enter_context(SimulatorServer(api_key=provider.api_key, knobs=knobs))
                base_url = simulator.ark_base_url if provider.provider_api == "ark" else simulator.base_url
        overrides = provider.pipeline_settings()
        with logs_to(log), LocalPipeline(stack, api_base_url=base_url, log_stream=log, **overrides) as pipeline:
            early = _submit_all(pipeline, uploads)
            limit = timeout or (SIMULATED_TIMEOUT_SECONDS if provider.simulated else REAL_PROVIDER_TIMEOUT_SECONDS)
            jobs = _wait_with_progress(pipeline, console, limit)
            results: list[JobResult] = []
            for upload in uploads:
                rows = [key for key in jobs if key.startswith(f"{upload.key}#")]
                if early.get(upload.key) is None and rows:  # a batch file: one result per row and take
                    results.extend(_result(upload, jobs.get(key), pipeline, out, row=key) for key in rows)
                else:
                    results.append(early.get(upload.key) or _result(upload, jobs.get(upload.key), pipeline, out))
            return results


def _submit_all(pipeline: Any, uploads: list[PlannedUpload]) -> dict[str, JobResult]:
    """Upload each image and deliver its S3 event to the submit handler; returns the uploads that made no job."""
    untracked: dict[str, JobResult] = {}
    for upload in uploads:
        for frame_key, frame in upload.frames:
            pipeline.s3.put_object(Bucket=pipeline.stack.bucket, Key=frame_key, Body=frame)
        event = pipeline.upload(upload.key, upload.data, upload.metadata)
        for outcome in pipeline.submit(event).get("outcomes", []):
            if not outcome.get("job_id"):
                untracked[upload.key] = JobResult(upload.label, outcome["outcome"], error=outcome.get("reason"))
            elif outcome["outcome"] == "WAITING" and (
                is_batch_file(upload.key) or pipeline.runtime.store.get_batch(outcome["job_id"]) is not None
            ):  # a batch file, or an image or manifest asking for takes (a batch of one row)
                _follow_batch_rows(pipeline, upload.key, outcome["job_id"])
    return untracked


def _follow_batch_rows(pipeline: Any, key: str, batch_id: str) -> None:
    """A batch (a file, or an upload with takes) has no job of its own: the run waits for (and reports) each of
    its rows and takes."""
    batch = pipeline.runtime.store.get_batch(batch_id)
    pipeline.job_ids.pop(key, None)
    if batch is not None:
        for row, take, job_id in batch_job_ids(batch):
            pipeline.job_ids[f"{key}#{row}.{take}"] = job_id


class AllJobsStuck(Exception):
    """Every job has been waiting on the same provider error for STUCK_SECONDS: waiting longer will not help."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class StuckDetector:
    """Notices when every job is still unsubmitted and its last problem is the same error, for STUCK_SECONDS."""

    def __init__(self, stuck_seconds: float) -> None:
        self._stuck_seconds = stuck_seconds
        self._since: float | None = None
        self._problem: str | None = None

    def check(self, jobs: dict[str, Job | None], now: float) -> None:
        problem = _common_problem(jobs)
        if problem is None or problem != self._problem:
            self._since = now if problem is not None else None
            self._problem = problem
            return
        if self._since is not None and now - self._since >= self._stuck_seconds:
            raise AllJobsStuck(problem)


def _common_problem(jobs: dict[str, Job | None]) -> str | None:
    codes = set()
    for job in jobs.values():
        if job is None or job.status.is_terminal or job.task_id is not None or job.last_error is None:
            return None
        codes.add(job.last_error.code)
    return codes.pop() if len(codes) == 1 else None


def last_problem(job: Job | None) -> str:
    if job is None or job.last_error is None or job.status.is_terminal:
        return ""
    return f"{job.last_error.code}: {job.last_error.message}"


def _wait_with_progress(pipeline: Any, console: Console, timeout: float) -> dict[str, Job | None]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, redirect_stdout=False, redirect_stderr=False) as progress:
        bar = progress.add_task("submitting", total=len(pipeline.job_ids))
        stuck = StuckDetector(STUCK_SECONDS)

        def on_progress(jobs: dict[str, Job | None]) -> None:
            statuses = Counter(job.status.value if job else "MISSING" for job in jobs.values())
            done = sum(1 for job in jobs.values() if job is not None and job.status.is_terminal)
            description = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
            problems = Counter(p for p in map(last_problem, jobs.values()) if p)
            if problems:  # why the live jobs are not moving, without opening the log
                problem, count = problems.most_common(1)[0]
                description += f" - last problem ({count} job(s)): {problem}"
            progress.update(bar, completed=done, description=description)
            stuck.check(jobs, time.monotonic())

        try:
            return dict(pipeline.run_until_terminal(timeout=timeout, on_progress=on_progress))
        except TimeoutError:
            return dict(pipeline.jobs())  # the table shows what is still running
        except AllJobsStuck as exc:
            progress.stop()
            console.print(
                f"Stopped waiting: every job has been held up by the same problem for {STUCK_SECONDS:.0f} s "
                f"({exc.problem}). Check the provider settings (SEEDANCE_API_BASE_URL, SEEDANCE_API_KEY).",
                highlight=False,
            )
            return dict(pipeline.jobs())


def _result(upload: PlannedUpload, job: Job | None, pipeline: Any, out: Path, *, row: str | None = None) -> JobResult:
    label = upload.label
    if row is not None:  # `<file> id <id>[ take <n>]`
        label += f" row {row.rsplit('#', 1)[1]}"
        if job is not None and job.batch is not None:
            take = f" take {job.batch.take}" if job.batch.takes > 1 else ""
            label = f"{upload.label} id {job.batch.record_id}{take}"
    if job is None:
        return JobResult(label, "MISSING", error="the job record was not found")
    seconds = (job.finished_at or time.time()) - job.created_at
    result = JobResult(label, job.status.value, job.task_id, seconds, arrived=pipeline.arrival(job))
    if job.status == JobStatus.SUCCEEDED:
        result.files = pipeline.download_outputs(job, out)
        result.video = next((p for p in result.files if p.suffix == ".mp4"), None)
    elif job.error is not None:
        result.error = job.error.message or job.error.code
    else:
        problem = last_problem(job)
        result.error = f"still {job.status.value} when the wait ended"
        if problem:
            result.error += f"; last problem: {problem}"
    return result


def results_table(results: list[JobResult]) -> Table:
    table = Table(title="Results")
    # Identifiers stay whole; the output path or the error message takes what width is left.
    for column in ("image", "status", "task id"):
        table.add_column(column, no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("arrived by", no_wrap=True)
    table.add_column("output", overflow="fold")
    for r in results:
        style = "green" if r.succeeded else "red"
        output = _display_path(r.video) if r.video else (r.error or "")
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else ""
        arrived = r.arrived if r.arrived in ("callback", "poll") else ""
        table.add_row(r.label, f"[{style}]{r.status}[/]", r.task_id or "", seconds, arrived, output)
    return table


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def run_and_report(uploads: list[PlannedUpload], args: argparse.Namespace, console: Console) -> int:
    results = run_pipeline(
        uploads,
        args.out,
        console,
        timeout=args.timeout,
        api=getattr(args, "api", None),
        callbacks=getattr(args, "callbacks", True),
    )
    console.print(results_table(results))
    arrivals = Counter(r.arrived for r in results if r.arrived in ("callback", "poll"))
    if arrivals:
        console.print(
            "Arrived by: " + ", ".join(f"{count} by {how}" for how, count in sorted(arrivals.items())), highlight=False
        )
    return 0 if all(r.succeeded for r in results) else 1
