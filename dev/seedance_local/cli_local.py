"""`seedance-pipeline local up`: a long-running local pipeline that turns uploads into videos until stopped."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from seedance_local import operator_tools
from seedance_local.cli_common import PROG, Subcommands, logs_to
from seedance_local.operator_tools import Target
from seedance_local.run_engine import SIMULATED_RUN_SECONDS, SIMULATOR_SETTINGS
from seedance_pipeline.models import Job


def add_local_commands(commands: Subcommands) -> None:
    local = commands.add_parser("local", help="a long-running local pipeline").add_subparsers(
        dest="local_command", required=True, metavar="ACTION"
    )
    up = local.add_parser("up", help="start it in the foreground (Ctrl-C stops it)")
    up.add_argument("--state-file", type=Path, default=Path(operator_tools.LOCAL_STATE_FILE))
    up.add_argument("--log-file", type=Path, default=Path("seedance-local.log"))


class UploadWatcher:
    """Stands in for S3 event notifications, which moto does not send to a Lambda: new objects -> S3 events.

    S3 sends an event for every PUT, also of the same bytes (new metadata, say), so an upload is known by its key,
    ETag and LastModified. moto's listing gives LastModified in whole seconds: for an object modified in the last
    RECENT_SECONDS, its metadata (one HEAD) tells apart a re-upload of the same bytes within the same second.
    """

    RECENT_SECONDS = 2.0

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self._s3, self._bucket, self._prefix = s3, bucket, prefix
        # (key, ETag, LastModified) -> the metadata seen while that was recent (None: not looked at)
        self._seen: dict[tuple[str, str, Any], str | None] = {}

    def new_upload_events(self) -> Iterator[dict[str, Any]]:
        from seedance_local.harness import next_sequencer, s3_put_event

        now = time.time()
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix):
            for obj in page.get("Contents", []):
                identity = (obj["Key"], obj["ETag"], obj["LastModified"])
                recent = now - obj["LastModified"].timestamp() < self.RECENT_SECONDS
                metadata = self._metadata(obj["Key"]) if recent else None
                if identity in self._seen and (metadata is None or self._seen[identity] in (None, metadata)):
                    continue
                self._seen[identity] = metadata
                etag = obj["ETag"].strip('"')
                yield s3_put_event(self._bucket, obj["Key"], size=obj["Size"], etag=etag, sequencer=next_sequencer())

    def _metadata(self, key: str) -> str | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError:  # deleted since the listing: nothing to tell apart
            return None
        return json.dumps(head.get("Metadata", {}), sort_keys=True)


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
        with console.status("Starting the local AWS stack and the simulator..."), logs_to(log):
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
            logs_to(log),
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
        _poll_logging_only_activity(pipeline)
        for key, job in pipeline.jobs().items():
            if job is not None and last_status.get(job.job_id) != job.status.value:
                last_status[job.job_id] = job.status.value
                console.print(f"{key}: {_job_summary(job)}", soft_wrap=True, highlight=False)
        time.sleep(1.0)


def _poll_logging_only_activity(pipeline: Any) -> None:
    """One scheduled poll. Its log lines (and EMF metrics on stdout) reach the log only when it did something:
    an idle poll every second would otherwise add ~30 KB a minute of "poll finished" to seedance-local.log."""
    from seedance_pipeline.observability import logger

    handler: Any = logger.registered_handler
    log_stream = handler.stream
    buffer = io.StringIO()
    handler.stream = buffer
    report: dict[str, Any] | None = None
    try:
        with contextlib.redirect_stdout(buffer):
            report = pipeline.poll(timeout_seconds=60)
    finally:
        handler.stream = log_stream
        text = buffer.getvalue()
        if report is None or not _idle(report) or any(f'"level":"{level}"' in text for level in ("WARNING", "ERROR")):
            log_stream.write(text)
            log_stream.flush()


def _idle(report: dict[str, Any]) -> bool:
    return not (report.get("checked") or report.get("skipped_leased") or report.get("outcomes"))


def _job_summary(job: Job) -> str:
    if job.outputs is not None:
        return f"{job.status.value} s3://{job.outputs.bucket}/{job.outputs.video_key}"
    if job.error is not None:
        return f"{job.status.value} {job.error.message}"
    return job.status.value
