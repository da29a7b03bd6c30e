"""The documented local walkthrough, run as written: the real AWS CLI (awscli from PyPI) against `local up`.

The shell blocks after each `<!-- walkthrough -->` marker of the site's pages (docs/getting-started.md) are extracted
and run with bash, so a documented command that stops working (or behaviour that drifts from what it says) fails
here. awscli pins botocore
exactly, so it lives in an environment of its own (.venv-awscli): `make test` makes it while the suite runs (the
Makefile's awscli-env), a plain pytest run on first use; both under one lock, so neither installs over the other.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from seedance_local.harness import REPO_ROOT
from tests.support.images import image_bytes

README = REPO_ROOT / "README.md"
GETTING_STARTED = REPO_ROOT / "docs" / "getting-started.md"
AWSCLI_VENV = REPO_ROOT / ".venv-awscli"
AWSCLI_LOCK = REPO_ROOT / ".venv-awscli.lock"  # the Makefile's awscli-env takes it with flock(1) while it installs
AWSCLI_READY = AWSCLI_VENV / ".installed"
MARKER = "<!-- walkthrough -->"
JOB_PLACEHOLDER = "3f2a9c1b7d04"
PYTHONPATH = os.pathsep.join(str(REPO_ROOT / p) for p in ("layers/common", "dev", "functions/submit", "functions/poll"))
NON_ASCII_PROMPT = "一只猫在雪中奔跑"
MULTIPART_THRESHOLD = 8 * 1024 * 1024  # the AWS CLI's default multipart_threshold


def walkthrough_blocks(text: str) -> list[str]:
    return re.findall(re.escape(MARKER) + r"\s*```bash\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="session")
def aws_cli() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    with AWSCLI_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # an install under way (make test starts one beside the suite) ends first
        try:
            if not AWSCLI_READY.exists():
                _install_awscli()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return aws


def _install_awscli() -> None:
    try:
        if not (AWSCLI_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"],
            check=True,
            timeout=300,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(AWSCLI_VENV, ignore_errors=True)
        pytest.skip(f"the AWS CLI (awscli from PyPI) could not be installed into {AWSCLI_VENV}: {exc}")
    AWSCLI_READY.touch()


def _noise_png(path: Path, side: int) -> None:
    # Random pixels do not compress: a PNG of side*side*3 bytes, over the multipart threshold when side is 1800.
    rng = random.Random(7)
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(path, format="PNG", compress_level=1)


@pytest.fixture
def workdir(tmp_path: Path, aws_cli: Path) -> Path:
    """A user's folder: their images, and a PATH with `aws` and `seedance-pipeline` on it."""
    (tmp_path / "kitten.jpg").write_bytes(image_bytes(800, 600))
    (tmp_path / "cat.png").write_bytes(image_bytes(640, 640, "PNG", color=(200, 200, 220)))
    (tmp_path / "start.png").write_bytes(image_bytes(864, 480, "PNG", color=(20, 40, 160)))
    (tmp_path / "end.png").write_bytes(image_bytes(864, 480, "PNG", color=(250, 150, 40)))
    _noise_png(tmp_path / "big-photo.png", 1800)
    assert (tmp_path / "big-photo.png").stat().st_size > MULTIPART_THRESHOLD
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").symlink_to(aws_cli)
    (bin_dir / "seedance-pipeline").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m seedance_local.cli "$@"\n', encoding="utf-8"
    )
    (bin_dir / "seedance-pipeline").chmod(0o755)
    return tmp_path


def _environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SEEDANCE_API_KEY"}
    env.update(
        {
            "PATH": f"{workdir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": PYTHONPATH,
            "COLUMNS": "200",
            # Nothing from the developer's own AWS configuration.
            "AWS_CONFIG_FILE": str(workdir / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials"),
        }
    )
    return env


@pytest.fixture
def local_up(workdir: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "seedance_local.cli", "local", "up"],
        cwd=workdir,
        env=_environment(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (workdir / ".seedance-local.json").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "local up did not write .seedance-local.json"
            time.sleep(0.3)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _bash(script: str, workdir: Path, prelude: str = "") -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + script],
        cwd=workdir,
        env=_environment(workdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"documented block failed:\n{script}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def _jobs(workdir: Path) -> list[dict]:
    out = _bash("seedance-pipeline jobs list --local --output json", workdir)
    return json.loads(out)


def test_the_documented_walkthrough_works_as_written_with_the_real_aws_cli(workdir, local_up):
    page = GETTING_STARTED.read_text(encoding="utf-8")
    blocks = walkthrough_blocks(page)
    assert len(blocks) == 3, (
        "getting-started.md: expected three walkthrough blocks (uploads, a manifest, the operator view)"
    )
    uploads, manifest, inspect = blocks
    assert "seedance-pipeline local up" in page
    assert JOB_PLACEHOLDER in inspect

    # The variables the first block sets are needed by the later ones, as in the user's second terminal.
    _bash(uploads, workdir)
    setup = "".join(
        line + "\n" for line in uploads.splitlines() if line.startswith(("ENDPOINT=", "BUCKET=", "export "))
    )
    _bash(manifest, workdir, setup)

    deadline = time.monotonic() + 240
    while True:
        jobs = {job["source_key"]: job for job in _jobs(workdir)}
        if len(jobs) == 4 and all(job["status"] == "SUCCEEDED" for job in jobs.values()):
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(2)

    kitten = jobs["uploads/pets/kitten.jpg"]
    assert kitten["request"]["prompt"] == "The kitten yawns, then stretches"  # a comma, through the JSON form
    cat = jobs["uploads/cat.png"]
    assert cat["request"]["prompt"] == NON_ASCII_PROMPT  # RFC 2047 inside the JSON, decoded by the pipeline
    assert cat["request"]["ratio"] == "1:1"
    big = jobs["uploads/big-photo.png"]
    assert big["source_etag"].endswith("-2"), "the 9 MB image should have gone up as a two-part multipart upload"
    sunrise = jobs["uploads/clips/sunrise.json"]
    assert sunrise["request"]["model"] == "doubao-seedance-1-0-lite-i2v-250428"
    assert "created_at" in sunrise and sunrise["created_at"].endswith("Z")  # ISO times

    short = sunrise["job_id"][:12]
    out = _bash(inspect.replace(JOB_PLACEHOLDER, short), workdir, setup)
    assert short in out  # the table's short id
    assert sunrise["job_id"] not in out.split("{", 1)[0]  # the table shows short ids, not whole ones
    record = json.loads(out[out.index("{") : out.rindex("}") + 1])
    assert record["job_id"] == sunrise["job_id"]
    for source in ("pets/kitten.jpg", "cat.png", "big-photo.png", "clips/sunrise.json"):
        tag = jobs[f"uploads/{source}"]["job_id"][:12]
        assert f"videos/{source}.{tag}.mp4" in out and f"videos/{source}.json" in out

    # Idle now: polls that find nothing to do leave the log alone.
    log = workdir / "seedance-local.log"
    size = log.stat().st_size
    time.sleep(5)
    assert log.stat().st_size - size < 1000, log.read_text(encoding="utf-8")[size:][:2000]


def test_the_readme_and_the_site_say_where_the_demo_videos_land():
    from seedance_local import cli_demo, operator_tools
    from seedance_pipeline.rules.keys import output_keys

    settings = operator_tools.naming_settings(operator_tools.DEFAULT_INPUT_PREFIX, operator_tools.DEFAULT_OUTPUT_PREFIX)
    # `demo --out out` mirrors the output keys under ./out/, as LocalPipeline.download_outputs does.
    folders = {
        "./out/"
        + output_keys(upload.key, settings, "0" * 32).video.removeprefix(settings.output_prefix).rsplit("/", 1)[0]
        + "/"
        for upload in cli_demo.planned_demo_uploads()
    }
    assert folders == {"./out/demo/"}
    assert "MP4s appear in ./out/demo/" in README.read_text(encoding="utf-8")
    assert "downloads the results into `./out/demo/`" in GETTING_STARTED.read_text(encoding="utf-8")
