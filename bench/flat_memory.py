"""Figure 3: a 1 GiB video goes from the provider's result URL into S3 without the process growing with it.

The measured process is a fresh child (`python -m bench.flat_memory --child ...`) that does nothing but the
transfer: it builds the pipeline's Runtime (build_runtime: the real ResultDownloader and ObjectStorage with the
settings' multipart chunk size and concurrency), notes its RSS, then streams ResultDownloader.open(url) into
ObjectStorage.upload_stream, exactly as result_delivery does; the figure is the peak RSS during the transfer
(VmHWM, reset just before it; see _reset_peak for why not the raw ru_maxrss) minus the RSS before.
moto runs in its own process (it keeps objects in memory; the object is deleted after each run) and the
simulator, serving a lazily generated body through video_body_factory, runs in this parent process.

Baseline: the naive transfer, `requests.get(url).content` then `put_object`, in the same kind of child. It
holds the whole video (and more), so it runs on 256 MiB rather than 1 GiB; its growth is linear in the size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

from bench.common import (
    API_KEY,
    MIB,
    MotoServerProcess,
    Row,
    child_env,
    image_data_url,
    patterned_body,
    print_to_parent,
    proc_status_mib,
    provider_submit_body,
    ratio,
    rss_mib,
    run_json_child,
    say,
)

FIG = "3"
TARGET_MIB = 64.0
LABELS = [
    ("3a. peak RSS increase streaming a video into S3 (MiB)", f"<= {TARGET_MIB:.0f} MiB"),
    ("3b. transfer rate provider -> S3 (MiB/s)", "none"),
]
BUCKET = "seedance-bench-memory"


def _result_url(sim: Any, size: int) -> str:
    """A finished simulator task whose video is `size` bytes; its result URL, as the pipeline would read it."""
    from seedance_pipeline.adapters.provider_client import SeedanceClient
    from seedance_pipeline.models import ProviderState

    sim.knobs.video_body_factory = patterned_body(size)
    client = SeedanceClient(sim.base_url, API_KEY)
    task_id = client.submit(provider_submit_body(image_data_url()))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = client.get(task_id)
        if result.state is ProviderState.SUCCEEDED and result.video_url:
            return result.video_url
        time.sleep(0.05)
    raise RuntimeError(f"simulator task {task_id} did not finish")


def _transfer_in_child(mode: str, url: str, endpoint: str, key: str) -> dict[str, Any]:
    env = child_env(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true",
        JOBS_TABLE_NAME="bench",
        API_BASE_URL="https://gateway.bench.invalid",  # never called: only the result transfer runs
        ALLOW_PRIVATE_DOWNLOADS="true",
    )
    return run_json_child(
        "bench.flat_memory",
        ["--child", mode, "--url", url, "--bucket", BUCKET, "--key", key],
        env=env,
        what=f"the {mode} transfer child",
        stderr_chars=500,
    )


def _measure(mode: str, size: int, sim: Any, moto: MotoServerProcess, s3: Any) -> dict[str, Any]:
    key = f"videos/bench/{mode}-{size // MIB}MiB.mp4"
    url = _result_url(sim, size)
    result = _transfer_in_child(mode, url, moto.endpoint, key)
    stored = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if stored != size:
        raise RuntimeError(f"{mode}: S3 holds {stored} bytes, expected {size}")
    moto_rss = moto.rss_mib()
    s3.delete_object(Bucket=BUCKET, Key=key)
    result["size_mib"] = size / MIB
    result["increase_mib"] = max(0.0, result["peak_mib"] - result["rss_before_mib"])
    result["mib_per_s"] = size / MIB / result["seconds"]
    say(
        FIG,
        f"{mode:8} {size / MIB:6.0f} MiB: RSS before {result['rss_before_mib']:.1f} MiB (set-up peak "
        f"{result['hwm_before_mib']:.1f}), peak {result['peak_mib']:.1f} MiB -> +{result['increase_mib']:.1f} MiB "
        f"(ru_maxrss {result['ru_maxrss_mib']:.1f}); "
        f"{result['seconds']:.1f} s = {result['mib_per_s']:.0f} MiB/s; moto process RSS {moto_rss:.0f} MiB",
    )
    return result


def run(quick: bool) -> list[Row]:
    import boto3

    from seedance_simulator import Knobs, SimulatorServer

    pipeline_sizes = [64 * MIB] if quick else [256 * MIB, 1024 * MIB]
    naive_size = 32 * MIB if quick else 256 * MIB
    with MotoServerProcess() as moto, SimulatorServer(api_key=API_KEY, knobs=Knobs(run_seconds=0.0)) as sim:
        s3 = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        pipeline = [_measure("pipeline", size, sim, moto, s3) for size in pipeline_sizes]
        naive = _measure("naive", naive_size, sim, moto, s3)

    largest = pipeline[-1]
    if len(pipeline) > 1:
        growth = largest["increase_mib"] - pipeline[0]["increase_mib"]
        say(
            FIG,
            f"pipeline growth from {pipeline[0]['size_mib']:.0f} MiB to {largest['size_mib']:.0f} MiB of video: "
            f"{growth:+.1f} MiB (flat means about zero)",
        )
    return [
        Row(
            figure=LABELS[0][0],
            this=f"{largest['increase_mib']:.1f} ({largest['size_mib']:.0f} MiB video)",
            baseline=f"{naive['increase_mib']:.1f} (naive, {naive['size_mib']:.0f} MiB video)",
            ratio=ratio(largest["increase_mib"], naive["increase_mib"]),
            target=LABELS[0][1],
            met=largest["increase_mib"] <= TARGET_MIB,
        ),
        Row(
            figure=LABELS[1][0],
            this=f"{largest['mib_per_s']:.0f} ({largest['size_mib']:.0f} MiB, moto S3)",
            baseline=f"{naive['mib_per_s']:.0f} (naive, {naive['size_mib']:.0f} MiB)",
            ratio=ratio(largest["mib_per_s"], naive["mib_per_s"]),
            target=LABELS[1][1],
            met=None,
        ),
    ]


# --- the child: one transfer, nothing else --------------------------------------------------------------------


def _child(mode: str, url: str, bucket: str, key: str) -> dict[str, Any]:
    if mode == "pipeline":
        from seedance_pipeline.runtime import build_runtime
        from seedance_pipeline.settings import Settings

        settings = Settings()  # from the environment, as in Lambda
        runtime = build_runtime(settings)

        def transfer() -> None:
            with runtime.downloader.open(url, max_bytes=settings.max_video_bytes) as stream:
                runtime.storage.upload_stream(stream, bucket, key, content_type="video/mp4")

    else:
        import boto3
        import requests
        from botocore.config import Config

        s3 = boto3.client("s3", config=Config(signature_version="s3v4"))

        def transfer() -> None:
            data = requests.get(url, timeout=60).content
            s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="video/mp4")

    hwm_before = proc_status_mib("VmHWM")
    _reset_peak()
    before = rss_mib()
    started = time.perf_counter()
    transfer()
    seconds = time.perf_counter() - started
    return {
        "rss_before_mib": before,
        "hwm_before_mib": hwm_before,
        "peak_mib": proc_status_mib("VmHWM"),
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "seconds": seconds,
    }


def _reset_peak() -> None:
    """Start the high-water mark at the current RSS, so imports and set-up before the transfer do not count.

    Why not ru_maxrss alone: on Linux it keeps the larger of this address space's peak and the peak of the one
    exec replaced, and subprocess forks with vfork, so a child's ru_maxrss starts at the parent's peak (the
    benchmark process: hundreds of MiB). VmHWM is this address space's own peak; writing 5 to clear_refs
    resets it (and ru_maxrss with it, when the inherited value is lower).
    """
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flat_memory")
    parser.add_argument("--child", choices=["pipeline", "naive"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    print_to_parent(_child(args.child, args.url, args.bucket, args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
