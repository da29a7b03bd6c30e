"""`seedance-pipeline`: run the pipeline on this machine, and operate a deployed (or local) one.

    seedance-pipeline demo [--out DIR]                 the bundled samples through the whole pipeline
    seedance-pipeline run IMAGE... [options]           your own images, same path
    seedance-pipeline jobs list|show|retry ...         look at and fix jobs (--stack, --table or --local)
    seedance-pipeline backfill s3://bucket/prefix      jobs for objects uploaded before the stack existed
    seedance-pipeline local up                         a long-running local pipeline for the commands above

`demo` and `run` start an embedded AWS (moto in server mode, resources from template.yaml) and drive the real
Lambda handlers with real S3 events. The provider is the local simulator unless SEEDANCE_API_KEY is set, in which
case the real Seedance API is called (SEEDANCE_API_BASE_URL picks the gateway).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import IO, Any, get_args

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from seedance_local import operator_tools
from seedance_local.operator_tools import OperatorError, Target
from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.models import Job, JobStatus
from seedance_pipeline.rules.image_rules import inspect_image
from seedance_pipeline.rules.video_request import MAX_SEED, decode_metadata_text
from seedance_pipeline.settings import Ratio, Resolution, Settings

PROG = "seedance-pipeline"
SAMPLES_PACKAGE = "seedance_local"
S3_METADATA_LIMIT = 2048  # bytes of user metadata (keys + values) S3 accepts on one object
SIMULATED_RUN_SECONDS = 1.5
SIMULATED_TIMEOUT_SECONDS = 120.0
REAL_PROVIDER_TIMEOUT_SECONDS = 30 * 60.0


class UsageError(Exception):
    """Bad command-line input: one line on stderr, exit code 2, and nothing started."""


# --- parsing ----------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; a single line is easier to read and to script.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {MAX_SEED}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _job_status(text: str) -> JobStatus:
    try:
        return JobStatus(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a job status (choose from {', '.join(s.value for s in JobStatus)})"
        ) from None


def _s3_url(text: str) -> tuple[str, str]:
    try:
        return operator_tools.parse_s3_url(text)
    except OperatorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Seedance image-to-video pipeline: local runs and operator tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    timing = _Parser(add_help=False)
    timing.add_argument("--out", type=Path, default=Path("out"), help="where videos and the log go (default ./out)")
    timing.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")

    commands.add_parser("demo", parents=[timing], help="run the bundled sample images through the pipeline")

    run = commands.add_parser("run", parents=[timing], help="run your own images through the pipeline")
    run.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    run.add_argument("--prompt", help="what should happen in the video (any language)")
    run.add_argument("--resolution", choices=get_args(Resolution))
    run.add_argument("--ratio", choices=get_args(Ratio))
    run.add_argument("--duration", type=int, choices=(5, 10), help="seconds")
    run.add_argument("--seed", type=_seed, help=f"0..{MAX_SEED}; the same seed repeats a result")
    run.add_argument("--camera-fixed", action=argparse.BooleanOptionalAction, default=None)
    run.add_argument("--watermark", action=argparse.BooleanOptionalAction, default=None)
    run.add_argument(
        "--last-frame", action=argparse.BooleanOptionalAction, default=None, help="also save the last frame"
    )

    target = _Parser(add_help=False)
    where = target.add_argument_group("target (one of --stack, --table, --local)")
    where.add_argument("--stack", help="a deployed stack's name (reads its CloudFormation outputs)")
    where.add_argument("--table", help="the jobs table name")
    where.add_argument(
        "--local", action="store_true", help=f"the pipeline `local up` runs ({operator_tools.LOCAL_STATE_FILE})"
    )
    where.add_argument("--state-file", type=Path, default=Path(operator_tools.LOCAL_STATE_FILE), help=argparse.SUPPRESS)
    where.add_argument("--bucket", help="the input bucket (with --table)")
    where.add_argument("--endpoint-url", help="an AWS endpoint such as a moto server (with --table)")
    where.add_argument("--region")
    where.add_argument("--profile")
    where.add_argument("--input-prefix", default=operator_tools.DEFAULT_INPUT_PREFIX, help="with --table")
    where.add_argument("--output-prefix", default=operator_tools.DEFAULT_OUTPUT_PREFIX, help="with --table")
    where.add_argument(
        "--due-shards", type=_positive_int, default=operator_tools.DEFAULT_DUE_SHARDS, help="with --table"
    )

    jobs = commands.add_parser("jobs", help="list, show or retry jobs").add_subparsers(
        dest="jobs_command", required=True, metavar="ACTION"
    )
    listing = jobs.add_parser("list", parents=[target], help="the newest jobs")
    listing.add_argument("--status", type=_job_status)
    listing.add_argument("--limit", type=_positive_int, default=50)
    jobs.add_parser("show", parents=[target], help="one job's record as JSON").add_argument("job_id", metavar="JOB")
    jobs.add_parser("retry", parents=[target], help="send a FAILED or TIMED_OUT job again").add_argument(
        "job_id", metavar="JOB"
    )

    backfill = commands.add_parser("backfill", parents=[target], help="make jobs for objects already in a bucket")
    backfill.add_argument("url", metavar="S3_URL", type=_s3_url, help="s3://bucket/prefix")

    local = commands.add_parser("local", help="a long-running local pipeline").add_subparsers(
        dest="local_command", required=True, metavar="ACTION"
    )
    up = local.add_parser("up", help="start it in the foreground (Ctrl-C stops it)")
    up.add_argument("--state-file", type=Path, default=Path(operator_tools.LOCAL_STATE_FILE))
    up.add_argument("--log-file", type=Path, default=Path("seedance-local.log"))
    return parser


# --- what goes in: images and their requests --------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedUpload:
    label: str  # what the results table calls it
    key: str
    data: bytes
    metadata: dict[str, str]


def encode_metadata_text(text: str) -> str:
    """S3 metadata travels as ASCII HTTP headers: anything else goes RFC 2047-encoded, which the pipeline decodes.

    Plain ASCII that would be mistaken for an encoding (percent escapes, '=?...?=') is encoded too, so it arrives
    exactly as typed.
    """
    if text.isascii() and text.isprintable() and _arrives_unchanged(text):
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def _arrives_unchanged(text: str) -> bool:
    try:
        return decode_metadata_text(text) == text
    except InvalidInput:  # looks like a malformed encoded word
        return False


def request_metadata(args: argparse.Namespace) -> dict[str, str]:
    """The per-image overrides (DESIGN.md: S3 user metadata) for the options the user gave; the rest default."""
    metadata: dict[str, str] = {}
    if args.prompt is not None:
        metadata["prompt"] = encode_metadata_text(args.prompt)
    for name, value in (("resolution", args.resolution), ("ratio", args.ratio), ("duration", args.duration),
                        ("seed", args.seed)):  # fmt: skip
        if value is not None:
            metadata[name] = str(value)
    for name, flag in (("camerafixed", args.camera_fixed), ("watermark", args.watermark),
                       ("return-last-frame", args.last_frame)):  # fmt: skip
        if flag is not None:
            metadata[name] = "true" if flag else "false"
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > S3_METADATA_LIMIT:
        raise UsageError(f"the request is {size} bytes as S3 metadata (the prompt, mostly); S3 allows 2 KB")
    return metadata


def checked_image(path: Path) -> bytes:
    """The image's bytes, after the provider's input rules: a bad file stops here, before anything starts."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = path.read_bytes()
        inspect_image(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except InvalidInput as exc:
        raise UsageError(f"{path}: {exc.message.removeprefix('the object is ')}") from None
    return data


def planned_user_uploads(args: argparse.Namespace) -> list[PlannedUpload]:
    metadata = request_metadata(args)
    uploads: dict[str, PlannedUpload] = {}
    for path in args.images:
        data = checked_image(path)
        key = operator_tools.DEFAULT_INPUT_PREFIX + path.name
        if key in uploads:
            raise UsageError(f"two images are named {path.name}; their videos would overwrite each other")
        uploads[key] = PlannedUpload(path.name, key, data, metadata)
    return list(uploads.values())


# "A breeze crosses the garden; the flowers sway gently." Chinese punctuation on purpose: all of it is non-ASCII.
DEMO_NON_ASCII_PROMPT = "微风吹过花园，花朵轻轻摇曳。"  # noqa: RUF001

# Three requests that exercise different paths: landscape, portrait with a last frame, a locked camera with a
# non-ASCII prompt (sent RFC 2047-encoded, as S3 metadata must be ASCII).
DEMO_REQUESTS: dict[str, dict[str, str]] = {
    "sunset-hills.jpg": {
        "prompt": "The sun sinks slowly behind the hills while the sky turns violet.",
        "resolution": "480p",
        "ratio": "16:9",
        "duration": "5",
    },
    "night-city.jpg": {
        "prompt": "City lights flicker on under a moonlit sky; the camera rises gently.",
        "resolution": "480p",
        "ratio": "9:16",
        "return-last-frame": "true",
        "seed": "42",
    },
    "flower-garden.png": {
        "prompt": encode_metadata_text(DEMO_NON_ASCII_PROMPT),
        "resolution": "480p",
        "ratio": "1:1",
        "camerafixed": "true",
    },
}


def planned_demo_uploads() -> list[PlannedUpload]:
    samples = resources.files(SAMPLES_PACKAGE).joinpath("samples")
    return [
        PlannedUpload(
            name, f"{operator_tools.DEFAULT_INPUT_PREFIX}demo/{name}", samples.joinpath(name).read_bytes(), meta
        )
        for name, meta in DEMO_REQUESTS.items()
    ]


# --- the provider -----------------------------------------------------------------------------------------------


@dataclass
class ProviderChoice:
    api_key: str
    base_url: str | None  # None: start the simulator, whose URL is known once it listens
    description: str

    @property
    def simulated(self) -> bool:
        return self.base_url is None

    def pipeline_settings(self) -> dict[str, str]:
        """Environment overrides for the handlers, per provider."""
        return dict(SIMULATOR_SETTINGS if self.simulated else REAL_PROVIDER_SETTINGS)


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


def choose_provider(environ: Mapping[str, str] = os.environ) -> ProviderChoice:
    api_key = environ.get("SEEDANCE_API_KEY", "").strip()
    if not api_key:
        # A fresh key per run: nothing outside this process can use the simulator, and the key is never shown.
        return ProviderChoice(secrets.token_urlsafe(32), None, "local Seedance simulator")
    base_url = environ.get("SEEDANCE_API_BASE_URL", "").strip() or str(Settings.model_fields["api_base_url"].default)
    return ProviderChoice(api_key, base_url.rstrip("/"), f"Seedance API at {base_url} (SEEDANCE_API_KEY)")


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

    @property
    def succeeded(self) -> bool:
        return self.status == JobStatus.SUCCEEDED.value


@contextlib.contextmanager
def _logs_to(log: IO[str]) -> Iterator[None]:
    """The handlers print EMF metrics to stdout and libraries warn on stderr: in Lambda that is CloudWatch,
    here it is the log file, so the terminal keeps only the progress bar and the table."""
    from seedance_pipeline.observability import logger

    handler: Any = logger.registered_handler  # a logging.StreamHandler
    previous = handler.stream
    # Plain assignments, not setStream(): that flushes the old stream, which may be closed already (a stream a
    # previous caller left behind). LocalPipeline's own setStream(log) is then a no-op.
    handler.stream = log
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        # LocalPipeline leaves the logger on our log file, which is about to close.
        handler.stream = sys.stdout if getattr(previous, "closed", False) else previous


def run_pipeline(
    uploads: list[PlannedUpload], out: Path, console: Console, *, timeout: float | None
) -> list[JobResult]:
    from seedance_local.harness import LocalPipeline
    from seedance_local.local_stack import LocalStack
    from seedance_simulator import Knobs, SimulatorServer

    provider = choose_provider()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "pipeline.log"
    console.print(f"Provider: {provider.description}. Handler logs: {log_path}")
    with contextlib.ExitStack() as resources_held, log_path.open("a", encoding="utf-8") as log:
        with console.status("Starting the local AWS stack (moto) from template.yaml..."), _logs_to(log):
            stack = resources_held.enter_context(LocalStack.start(api_key=provider.api_key))
            base_url = provider.base_url
            if base_url is None:
                knobs = Knobs(run_seconds=SIMULATED_RUN_SECONDS, queue_seconds=0)
                simulator = resources_held.enter_context(SimulatorServer(api_key=provider.api_key, knobs=knobs))
                base_url = simulator.base_url
        overrides = provider.pipeline_settings()
        with _logs_to(log), LocalPipeline(stack, api_base_url=base_url, log_stream=log, **overrides) as pipeline:
            early = _submit_all(pipeline, uploads)
            limit = timeout or (SIMULATED_TIMEOUT_SECONDS if provider.simulated else REAL_PROVIDER_TIMEOUT_SECONDS)
            jobs = _wait_with_progress(pipeline, console, limit)
            return [early.get(u.key) or _result(u, jobs.get(u.key), pipeline, out) for u in uploads]


def _submit_all(pipeline: Any, uploads: list[PlannedUpload]) -> dict[str, JobResult]:
    """Upload each image and deliver its S3 event to the submit handler; returns the uploads that made no job."""
    untracked: dict[str, JobResult] = {}
    for upload in uploads:
        event = pipeline.upload(upload.key, upload.data, upload.metadata)
        for outcome in pipeline.submit(event).get("outcomes", []):
            if not outcome.get("job_id"):
                untracked[upload.key] = JobResult(upload.label, outcome["outcome"], error=outcome.get("reason"))
    return untracked


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

        def on_progress(jobs: dict[str, Job | None]) -> None:
            statuses = Counter(job.status.value if job else "MISSING" for job in jobs.values())
            done = sum(1 for job in jobs.values() if job is not None and job.status.is_terminal)
            description = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
            progress.update(bar, completed=done, description=description)

        try:
            return dict(pipeline.run_until_terminal(timeout=timeout, on_progress=on_progress))
        except TimeoutError:
            return dict(pipeline.jobs())  # the table shows what is still running


def _result(upload: PlannedUpload, job: Job | None, pipeline: Any, out: Path) -> JobResult:
    if job is None:
        return JobResult(upload.label, "MISSING", error="the job record was not found")
    seconds = (job.finished_at or time.time()) - job.created_at
    result = JobResult(upload.label, job.status.value, job.task_id, seconds)
    if job.status == JobStatus.SUCCEEDED:
        result.files = pipeline.download_outputs(job, out)
        result.video = next((p for p in result.files if p.suffix == ".mp4"), None)
    elif job.error is not None:
        result.error = job.error.message or job.error.code
    else:
        result.error = f"still {job.status.value} when the wait ended"
    return result


def results_table(results: list[JobResult]) -> Table:
    table = Table(title="Results")
    # Identifiers stay whole; the output path or the error message takes what width is left.
    for column in ("image", "status", "task id"):
        table.add_column(column, no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("output", overflow="fold")
    for r in results:
        style = "green" if r.succeeded else "red"
        output = _display_path(r.video) if r.video else (r.error or "")
        seconds = f"{r.seconds:.1f}" if r.seconds is not None else ""
        table.add_row(r.label, f"[{style}]{r.status}[/]", r.task_id or "", seconds, output)
    return table


def _display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def run_and_report(uploads: list[PlannedUpload], args: argparse.Namespace, console: Console) -> int:
    results = run_pipeline(uploads, args.out, console, timeout=args.timeout)
    console.print(results_table(results))
    return 0 if all(r.succeeded for r in results) else 1


# --- operator commands ------------------------------------------------------------------------------------------


def target_from_args(args: argparse.Namespace) -> Target:
    chosen = [
        name for name, given in (("--stack", args.stack), ("--table", args.table), ("--local", args.local)) if given
    ]
    if len(chosen) != 1:
        raise UsageError("say which pipeline with exactly one of --stack NAME, --table NAME or --local")
    if args.stack:
        return operator_tools.stack_target(args.stack, profile=args.profile, region=args.region)
    if args.local:
        return operator_tools.local_target(args.state_file)
    return Target(
        table=args.table,
        bucket=args.bucket,
        region=args.region,
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        input_prefix=args.input_prefix,
        output_prefix=args.output_prefix,
        due_shards=args.due_shards,
    )


def jobs_command(args: argparse.Namespace, console: Console) -> int:
    target = target_from_args(args)
    if args.jobs_command == "list":
        jobs = operator_tools.list_jobs(target.client("dynamodb"), target.table, status=args.status, limit=args.limit)
        console.print(jobs_table(jobs))
        return 0
    if args.jobs_command == "show":
        job = operator_tools.show_job(target.store(), args.job_id)
        console.file.write(json.dumps(job.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
        return 0
    job = operator_tools.retry_job(target.store(), args.job_id)
    console.print(f"job {job.job_id} is WAITING again; the next poll submits it ({job.notes[-1]})")
    return 0


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(title=f"{len(jobs)} job(s), newest first")
    for column in ("job id", "status", "source", "created", "task id", "error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        problem = job.error or job.last_error
        table.add_row(
            job.job_id,
            job.status.value,
            job.source_key,
            operator_tools.iso_time(job.created_at),
            job.task_id or "",
            f"{problem.code}: {problem.message}" if problem else "",
        )
    return table


def backfill_command(args: argparse.Namespace, console: Console) -> int:
    bucket, prefix = args.url
    target = target_from_args(args)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} objects"))
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("listing", total=None)
        counts: Counter[str] = Counter()

        def on_object(key: str, outcome: str) -> None:
            counts[outcome] += 1
            progress.update(bar, advance=1, description=", ".join(f"{n} {o}" for o, n in sorted(counts.items())))

        report = operator_tools.backfill(
            target.client("s3"),
            target.store(),
            bucket,
            prefix,
            target.naming_settings(),
            output_bucket=target.output_bucket,
            on_object=on_object,
        )
    console.print(
        f"created {report.created}, already present {report.already_present}, ignored {report.ignored} "
        f"(of {report.seen} objects under s3://{bucket}/{prefix})"
    )
    return 0


# --- local up ---------------------------------------------------------------------------------------------------


class UploadWatcher:
    """Stands in for S3 event notifications, which moto does not send to a Lambda: new objects -> S3 events."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self._s3, self._bucket, self._prefix = s3, bucket, prefix
        self._seen: set[tuple[str, str]] = set()

    def new_upload_events(self) -> Iterator[dict[str, Any]]:
        from seedance_local.harness import next_sequencer, s3_put_event

        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix):
            for obj in page.get("Contents", []):
                identity = (obj["Key"], obj["ETag"])
                if identity not in self._seen:
                    self._seen.add(identity)
                    etag = obj["ETag"].strip('"')
                    yield s3_put_event(
                        self._bucket, obj["Key"], size=obj["Size"], etag=etag, sequencer=next_sequencer()
                    )


def _stop_on_sigterm() -> None:
    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def local_up(args: argparse.Namespace, console: Console) -> int:
    from seedance_local.harness import LocalPipeline
    from seedance_local.local_stack import LocalStack
    from seedance_simulator import Knobs, SimulatorServer

    _stop_on_sigterm()
    api_key = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as held, args.log_file.open("a", encoding="utf-8") as log:
        with console.status("Starting the local AWS stack and the simulator..."), _logs_to(log):
            stack = held.enter_context(LocalStack.start(api_key=api_key))
            knobs = Knobs(run_seconds=SIMULATED_RUN_SECONDS, queue_seconds=0)
            simulator = held.enter_context(SimulatorServer(api_key=api_key, knobs=knobs))
        target = Target(
            table=stack.table_name,
            bucket=stack.bucket,
            output_bucket=stack.output_bucket,
            region=stack.region,
            endpoint_url=stack.endpoint_url,
            input_prefix=stack.parameters.get("InputPrefix") or operator_tools.DEFAULT_INPUT_PREFIX,
            output_prefix=stack.parameters.get("OutputPrefix") or operator_tools.DEFAULT_OUTPUT_PREFIX,
            due_shards=int(stack.parameters.get("DueIndexShards") or operator_tools.DEFAULT_DUE_SHARDS),
        )
        operator_tools.write_local_state(args.state_file, target, simulator_url=simulator.base_url)
        held.callback(args.state_file.unlink, missing_ok=True)
        _print_local_banner(console, target, simulator.base_url, args)
        with (
            _logs_to(log),
            LocalPipeline(stack, api_base_url=simulator.base_url, log_stream=log, **SIMULATOR_SETTINGS) as pipeline,
        ):
            watcher = UploadWatcher(stack.client("s3"), stack.bucket, target.input_prefix)
            with contextlib.suppress(KeyboardInterrupt):
                _serve_locally(pipeline, watcher, console)
    console.print("Stopped.")
    return 0


def _print_local_banner(console: Console, target: Target, simulator_url: str, args: argparse.Namespace) -> None:
    lines = [
        f"Local pipeline up. State: {args.state_file}, handler logs: {args.log_file}",
        f"  AWS endpoint  {target.endpoint_url}  (any credentials)",
        f"  bucket        {target.bucket}",
        f"  table         {target.table}",
        f"  simulator     {simulator_url}",
        f"Upload:  aws --endpoint-url {target.endpoint_url} s3 cp photo.jpg s3://{target.bucket}/{target.input_prefix}",
        f"Inspect: {PROG} jobs list --local",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)  # whole lines: they are meant to be copied


def _serve_locally(pipeline: Any, watcher: UploadWatcher, console: Console) -> None:
    """What S3 notifications and the EventBridge schedule do in AWS: deliver new uploads, poll due jobs."""
    last_status: dict[str, str] = {}  # job id -> the status last printed, so each change is printed once
    while True:
        for event in watcher.new_upload_events():
            for outcome in pipeline.submit(event).get("outcomes", []):
                if not outcome.get("job_id"):  # ignored: no job will report on it later
                    console.print(f"{outcome['key']}: {outcome['outcome']} ({outcome.get('reason')})", soft_wrap=True)
        pipeline.poll(timeout_seconds=60)
        for key, job in pipeline.jobs().items():
            if job is not None and last_status.get(job.job_id) != job.status.value:
                last_status[job.job_id] = job.status.value
                console.print(f"{key}: {_job_summary(job)}", soft_wrap=True, highlight=False)
        time.sleep(1.0)


def _job_summary(job: Job) -> str:
    if job.outputs is not None:
        return f"{job.status.value} s3://{job.outputs.bucket}/{job.outputs.video_key}"
    if job.error is not None:
        return f"{job.status.value} {job.error.message}"
    return job.status.value


# --- entry point ------------------------------------------------------------------------------------------------


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, Console], int]] = {
        "demo": lambda a, c: run_and_report(planned_demo_uploads(), a, c),
        "run": lambda a, c: run_and_report(planned_user_uploads(a), a, c),
        "jobs": jobs_command,
        "backfill": backfill_command,
        "local": local_up,
    }
    return handlers[args.command](args, console)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _console() -> Console:
    # Bound to today's stdout: the pipeline redirects sys.stdout to its log while it runs. Piped output (CI logs)
    # gets 120 columns rather than rich's 80, so the results table keeps task ids and paths on one line.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, width=120 if piped else None)


def main(argv: Sequence[str] | None = None) -> int:
    console = _console()
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args, console)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except OperatorError as exc:
        return _fail(str(exc), 1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _fail(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}", 1)
    except BotoCoreError as exc:
        return _fail(f"AWS: {exc}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        # A bug or an environment problem: one line here, the traceback in a file a bug report can attach.
        report = Path(tempfile.gettempdir()) / f"{PROG}-crash.txt"
        report.write_text(traceback.format_exc(), encoding="utf-8")
        return _fail(f"unexpected {type(exc).__name__}: {exc} (traceback in {report})", 1)


if __name__ == "__main__":
    sys.exit(main())
