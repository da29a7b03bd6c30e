"""Figure 4: cold start, importing each handler module in a fresh interpreter, against `boto3.client("s3")`.

Each sample is a fresh `python -c` child with a Lambda-like environment (the template's POWERTOOLS_* variables,
POWERTOOLS_TRACE_DISABLED=true, a region, AWS_LAMBDA_FUNCTION_NAME) that times, with perf_counter, the import of
the handler module: that is all the handlers do at module scope (the Runtime, and so the boto3 clients, is built
on the first invocation by shared_runtime()). The baseline child times `import boto3; boto3.client("s3")`.
Interpreter start-up is common to both and left out; each figure is the median of several runs, after one
unmeasured run that fills the bytecode caches. When the target is missed, `-X importtime` lists the heaviest
imports.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from collections import defaultdict

from bench.common import Row, child_env, ratio, say

FIG = "4"
TARGET_RATIO = 1.5
LABELS = [
    ("4a. cold start: import submit_handler (ms)", f"<= {TARGET_RATIO}x"),
    ("4b. cold start: import poll_handler (ms)", f"<= {TARGET_RATIO}x"),
]

TIMED = "import time\nstarted = time.perf_counter()\n{body}\nprint((time.perf_counter() - started) * 1000)\n"
SUBJECTS = {
    "baseline": 'import boto3\nboto3.client("s3")',
    "submit_handler": "import submit_handler",
    "poll_handler": "import poll_handler",
    # Not figures, context. What the first invocation adds on top (the Runtime: four boto3 clients)...
    "poll_handler + shared_runtime()": "import poll_handler\nfrom seedance_pipeline.runtime import shared_runtime\n"
    "shared_runtime()",
    # ...and the handler as deployed with `Tracing: Active`: the X-Ray SDK imported and patching boto3/requests.
    "poll_handler, tracing on": "import poll_handler",
}
# Environment differences per subject: tracing on, as inside Lambda (LAMBDA_TASK_ROOT set, no TRACE_DISABLED).
SUBJECT_ENV: dict[str, dict[str, str | None]] = {
    "poll_handler, tracing on": {"POWERTOOLS_TRACE_DISABLED": None, "LAMBDA_TASK_ROOT": "/var/task"}
}


def _lambda_env(overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    env = child_env(
        AWS_LAMBDA_FUNCTION_NAME="seedance-bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        POWERTOOLS_SERVICE_NAME="seedance-pipeline",
        POWERTOOLS_METRICS_NAMESPACE="SeedancePipeline",
        POWERTOOLS_LOG_LEVEL="INFO",
        POWERTOOLS_TRACER_CAPTURE_RESPONSE="false",
        POWERTOOLS_TRACE_DISABLED="true",
        JOBS_TABLE_NAME="seedance-jobs",
        API_BASE_URL="https://gateway.bench.invalid",  # never called: the cold start builds clients only
        API_KEY_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:ApiKeySecret",
    )
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _time_once(
    body: str, extra_args: tuple[str, ...] = (), env: dict[str, str | None] | None = None
) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, *extra_args, "-c", TIMED.format(body=body)],
        capture_output=True,
        text=True,
        env=_lambda_env(env),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{body!r} failed: {done.stderr.strip()[-400:]}")
    return float(done.stdout.strip().splitlines()[-1]), done.stderr


def _medians(runs: int) -> dict[str, list[float]]:
    """Samples for every subject, interleaved run by run so that machine noise falls on all of them alike."""
    for name, body in SUBJECTS.items():
        _time_once(body, env=SUBJECT_ENV.get(name))  # fills __pycache__, as a deployed package would ship it
    samples: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    for _ in range(runs):
        for name, body in SUBJECTS.items():
            samples[name].append(_time_once(body, env=SUBJECT_ENV.get(name))[0])
    return samples


def top_imports(body: str, limit: int = 8) -> list[str]:
    """The heaviest imports under `body`: top-level packages by self time, and the biggest cumulative entries."""
    _, stderr = _time_once(body, ("-X", "importtime"))
    by_package: dict[str, int] = defaultdict(int)
    cumulative: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = int(match[1]), int(match[2]), len(match[3]), match[4]
        by_package[name.split(".")[0]] += self_us
        if indent <= 5:  # the handler's own imports and theirs, not the leaves
            cumulative.append((cumulative_us, name))
    packages = sorted(by_package.items(), key=lambda item: -item[1])[:limit]
    lines = ["self time by package: " + ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in packages)]
    biggest = sorted(cumulative, reverse=True)[:limit]
    lines.append("largest cumulative imports: " + ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in biggest))
    return lines


def run(quick: bool) -> list[Row]:
    runs = 3 if quick else 7
    samples = _medians(runs)
    median = {name: statistics.median(values) for name, values in samples.items()}
    baseline = median["baseline"]
    for name, values in samples.items():
        say(
            FIG,
            f"{name}: median {median[name]:.0f} ms of {runs} {[round(v) for v in values]} "
            f"= {median[name] / baseline:.2f}x the baseline",
        )
    rows = []
    for (label, target), handler in zip(LABELS, ("submit_handler", "poll_handler"), strict=True):
        ok = median[handler] <= TARGET_RATIO * baseline
        if not ok:
            for line in top_imports(SUBJECTS[handler]):
                say(FIG, f"  {handler} {line}")
        rows.append(
            Row(
                figure=label,
                this=f"{median[handler]:.0f}",
                baseline=f'{baseline:.0f} (import boto3; boto3.client("s3"))',
                ratio=ratio(median[handler], baseline),
                target=target,
                met=ok,
            )
        )
    return rows
