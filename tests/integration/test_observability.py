"""Operators can follow one job through the logs and count business events in the metrics."""

from __future__ import annotations

import io
import json

from tests.support.images import image_bytes


def test_every_log_line_about_a_job_carries_its_job_id_and_task_id(make_pipeline, sim, capsys):
    logs = io.StringIO()
    # No retries inside a call: with them, three jobs checked at once could share the four 500s between their
    # attempts and every call would still succeed (seen as a flaky run with no warning and no ProviderErrors).
    pipeline = make_pipeline(
        log_stream=logs, POWERTOOLS_LOG_LEVEL="DEBUG", POWERTOOLS_METRICS_DISABLED="false", HTTP_RETRIES="0"
    )
    sim.knobs.fault_methods = "GET"
    sim.knobs.server_errors_next = 4  # four status checks fail and log a warning
    for n in range(3):
        pipeline.submit(pipeline.upload(f"uploads/obs/{n}.jpg", image_bytes()))
    jobs = pipeline.run_until_terminal(timeout=60)
    task_of = {job.job_id: job.task_id for job in jobs.values()}

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    about_jobs = [
        line
        for line in lines
        if line["message"] in ("job submitted", "job SUCCEEDED", "status check failed; will retry")
    ]
    assert len(about_jobs) >= 6
    for line in about_jobs:
        assert line["job_id"] in task_of, line
        assert line["task_id"] == task_of[line["job_id"]], line
    assert not any("job_id" in line for line in lines if line["message"] == "poll finished"), "keys leaked across jobs"

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for doc in emf for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {
        "JobsSubmitted",
        "JobsSucceeded",
        "GenerationSeconds",
        "StatusChecks",
        "JobsInFlight",
        "ProviderErrors",
    } <= names
    by_code = [doc for doc in emf if "error_code" in doc]
    assert by_code and all(doc["ProviderErrors"] == [1.0] or doc["ProviderErrors"] == 1.0 for doc in by_code)
