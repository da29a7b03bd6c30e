"""`seedance-pipeline local up`: a long-running local pipeline that turns uploads into videos until stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from seedance_local import cli
from seedance_local.harness import REPO_ROOT
from tests.support.images import image_bytes

PYTHONPATH = os.pathsep.join(str(REPO_ROOT / p) for p in ("layers/common", "dev", "functions/submit", "functions/poll"))


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def local_up(tmp_path: Path):
    state_file = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "COLUMNS": "200"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seedance_local.cli",
            "local",
            "up",
            "--state-file",
            str(state_file),
            "--log-file",
            str(tmp_path / "local.log"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for(state_file.exists, 60, "the state file")
        yield process, state_file
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_local_up_turns_an_upload_into_a_video_and_the_operator_commands_see_it(local_up, capsys):
    process, state_file = local_up
    state = json.loads(state_file.read_text())
    s3 = boto3.client(
        "s3",
        endpoint_url=state["endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.put_object(
        Bucket=state["bucket"], Key="uploads/local/cat.jpg", Body=image_bytes(), Metadata={"resolution": "480p"}
    )

    def listed_succeeded() -> bool:
        assert cli.main(["jobs", "list", "--local", "--state-file", str(state_file)]) == 0
        return "SUCCEEDED" in capsys.readouterr().out

    wait_for(listed_succeeded, 90, "the job to succeed")
    sidecar = json.loads(s3.get_object(Bucket=state["bucket"], Key="videos/local/cat.jpg.json")["Body"].read())
    head = s3.head_object(Bucket=state["bucket"], Key=sidecar["outputs"]["video"])
    assert head["ContentLength"] > 1000

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not state_file.exists(), "local up should remove its state file when it stops"


def test_the_upload_watcher_sees_a_re_upload_of_the_same_bytes_as_a_new_event(stack):
    from seedance_local.cli_local import UploadWatcher

    s3 = stack.client("s3")
    watcher = UploadWatcher(s3, stack.bucket, "uploads/")
    body = image_bytes()
    s3.put_object(Bucket=stack.bucket, Key="uploads/again.jpg", Body=body, Metadata={"ratio": "1:1"})
    assert len(list(watcher.new_upload_events())) == 1
    assert list(watcher.new_upload_events()) == []  # nothing new: no event

    time.sleep(0.01)  # S3's LastModified (in the listing) has millisecond resolution
    s3.put_object(Bucket=stack.bucket, Key="uploads/again.jpg", Body=body, Metadata={"ratio": "16:9"})

    events = list(watcher.new_upload_events())
    assert len(events) == 1, "the same bytes with new metadata are a new PUT, and S3 would send a new event"
