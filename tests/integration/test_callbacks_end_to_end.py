"""Provider callbacks end to end on the local stack: the simulator POSTs to the Function URL over real HTTP, the
callback function confirms with one status call and delivers; the poller stays the safety net."""

from __future__ import annotations

import io
import json
import string
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit

import pytest

from seedance_local.harness import CALLBACK_FUNCTION, LocalPipeline
from seedance_local.local_stack import LocalStack
from seedance_pipeline.adapters.job_events import event_detail
from seedance_pipeline.logic.callback_intake import handoff_interval
from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes
from tests.support.stack_settings import API_KEY

CALLBACK_PARAMETERS = {"CallbackMode": "on", "CallbackField": "callback_url"}


@pytest.fixture(scope="module")
def callback_stack() -> Iterator[LocalStack]:
    with LocalStack.start(api_key=API_KEY, parameters=CALLBACK_PARAMETERS) as local:
        yield local


@pytest.fixture
def stack(callback_stack: LocalStack) -> LocalStack:
    """The module's CallbackMode=on stack, for conftest's make_pipeline; its records start empty for each test."""
    services = callback_stack.lambda_services
    assert services is not None
    services.emulator.clear_invocations()
    services.urls[CALLBACK_FUNCTION].clear_requests()
    return callback_stack


def _submit(pipeline: LocalPipeline, key: str) -> str:
    pipeline.submit(pipeline.upload(key, image_bytes(640, 480, "PNG"), {"resolution": "480p"}))
    return pipeline.job_ids[key]


def _callback_url_for(sim: Any, task_index: int = -1) -> str:
    """The per-job callback URL the provider was given (from the submit body the simulator received)."""
    body = sim.counters.request_bodies[task_index]
    return str(body["callback_url"])


def _post(url: str, body: bytes = b"{}") -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except HTTPError as error:
        return int(error.code)


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


def _eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for something another thread does (the simulator's sender); fails the test if it never happens."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never became true"
        time.sleep(0.05)


def _handoffs(pipeline: LocalPipeline, job_id: str) -> list[Any]:
    return [i for i in pipeline.invocations if (i.payload.get("seedance_callback") or {}).get("job_id") == job_id]


# --- the stack --------------------------------------------------------------------------------------------------


def test_the_stack_serves_the_function_url_and_the_invoke_api(stack: LocalStack) -> None:
    env = stack.environment(api_base_url="http://127.0.0.1:1")
    services = stack.lambda_services
    assert services is not None
    server = services.urls[CALLBACK_FUNCTION]
    assert env["CALLBACK_URL"] == server.base_url
    assert env["CALLBACK_URL"].startswith("http://127.0.0.1:") and env["CALLBACK_URL"].endswith("/")
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == services.emulator.endpoint_url
    # The public intake answers in milliseconds; the worker it hands off to delivers a whole video.
    assert services.timeouts[CALLBACK_FUNCTION] == 10 and services.timeouts["CallbackWorkerFunction"] == 300
    assert env["CALLBACK_WORKER_FUNCTION"] == "CallbackWorkerFunction"
    assert "CallbackWorkerFunction" not in services.urls  # invoked by the intake only, never over a URL
    key = stack.client("secretsmanager").get_secret_value(SecretId=env["CALLBACK_SIGNING_SECRET_ID"])
    secret = key["SecretString"]
    assert len(secret) == 64
    assert set(secret) <= set(string.ascii_letters + string.digits)  # GenerateSecretString: no punctuation


# --- callbacks deliver ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_a_job_is_delivered_by_its_callback_with_no_poll_run_and_one_status_call(
    pipeline: LocalPipeline, sim: Any, stack: LocalStack
) -> None:
    job_id = _submit(pipeline, f"uploads/cb/{pipeline.environment['PROVIDER_API']}-callback.png")
    queries_after_submit = sim.counters.query

    (job,) = pipeline.run_until_terminal(timeout=60, poll=False).values()
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert pipeline.poll_runs == []
    assert pipeline.arrival(job) == "callback"
    assert sim.counters.query - queries_after_submit == 1
    assert sim.counters.download == 1
    stored = stack.client("s3").get_object(Bucket=stack.output_bucket, Key=job.outputs.video_key)["Body"].read()
    assert stored[4:8] == b"ftyp"
    (handoff,) = [h for h in _handoffs(pipeline, job_id) if h.state == "succeeded"][-1:]
    # The public intake handed the job to the worker: the function that delivers never faces the provider's POST.
    assert handoff.invoked_function_arn.endswith(":function:CallbackWorkerFunction")


def test_dropped_callbacks_leave_the_job_to_the_poll_safety_net(pipeline: LocalPipeline, sim: Any) -> None:
    sim.knobs.callback_drop = 1000
    job_id = _submit(pipeline, "uploads/cb/dropped.png")

    (job,) = pipeline.run_until_terminal(timeout=90).values()
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert pipeline.arrival(job) == "poll"
    assert _handoffs(pipeline, job_id) == []
    assert sim.counters.callbacks_dropped >= 1
    assert sim.counters.download == 1


def test_duplicate_callbacks_make_one_delivery_of_one_task(pipeline: LocalPipeline, sim: Any) -> None:
    sim.knobs.callback_duplicate = 3
    _submit(pipeline, "uploads/cb/duplicated.png")

    (job,) = pipeline.run_until_terminal(timeout=60, poll=False).values()
    # The terminal callback and its three copies all reach the function (each is answered 200).
    _eventually(lambda: sum(r.status == 200 for r in pipeline_requests(pipeline)) >= 4)
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert pipeline.arrival(job) == "callback"
    assert sim.counters.tasks_created == 1
    assert sim.counters.download == 1


def test_delayed_callbacks_still_deliver(pipeline: LocalPipeline, sim: Any) -> None:
    sim.knobs.callback_delay_seconds = 1.0
    _submit(pipeline, "uploads/cb/delayed.png")

    (job,) = pipeline.run_until_terminal(timeout=60, poll=False).values()
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert pipeline.arrival(job) == "callback"


def test_callbacks_sent_newest_first_deliver_once_and_stale_ones_change_nothing(
    pipeline: LocalPipeline, sim: Any
) -> None:
    sim.knobs.callback_reorder = True
    _submit(pipeline, "uploads/cb/reordered.png")

    (job,) = pipeline.run_until_terminal(timeout=60, poll=False).values()
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert sim.counters.download == 1
    assert pipeline.runtime.store.get(job.job_id).status is JobStatus.SUCCEEDED


def test_forged_callbacks_are_refused_and_change_nothing(pipeline: LocalPipeline, sim: Any) -> None:
    sim.knobs.callback_forge = True
    _submit(pipeline, "uploads/cb/forged.png")

    (job,) = pipeline.run_until_terminal(timeout=60).values()
    assert pipeline.wait_idle(30)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert sim.counters.callbacks_forged >= 2
    # The tampered token and the other job's id under this token, for every status change.
    refused = [r for r in pipeline_requests(pipeline) if r.status == 403]
    assert len(refused) >= 2
    assert sim.counters.callback_status_codes.get(403, 0) >= 2
    assert sim.counters.download == 1
    assert sim.counters.tasks_created == 1


def pipeline_requests(pipeline: LocalPipeline) -> list[Any]:
    server = pipeline.callback_url
    assert server is not None
    return list(server.requests)


# --- forged requests straight at the Function URL ----------------------------------------------------------------


def test_requests_with_a_bad_token_or_another_jobs_token_do_nothing(pipeline: LocalPipeline, sim: Any) -> None:
    sim.knobs.callback_drop = 1000  # only the requests below reach the function
    first = _submit(pipeline, "uploads/cb/direct-one.png")
    url_one = _callback_url_for(sim, -1)
    second = _submit(pipeline, "uploads/cb/direct-two.png")
    queries = sim.counters.query
    body = json.dumps({"id": "x", "status": "succeeded"}).encode()

    assert _post(_tamper(url_one, token="A" * 43), body) == 403
    assert _post(_tamper(url_one, job=second), body) == 403  # the first job's token does not open the second
    assert _post(_tamper(url_one, job="not-a-job"), body) == 403
    assert _post(_tamper(url_one, token=""), body) == 403

    assert pipeline.wait_idle(30)
    assert _handoffs(pipeline, first) == _handoffs(pipeline, second) == []
    assert sim.counters.query == queries
    for job_id in (first, second):
        assert not pipeline.runtime.store.get(job_id).status.is_terminal
    # The poll net ends both jobs here, so their later callbacks (sent once the knob is reset) find nothing to do.
    pipeline.run_until_terminal(timeout=90)
    assert pipeline.wait_idle(30)


def test_a_replay_after_the_job_is_terminal_and_an_oversized_body_do_nothing(pipeline: LocalPipeline, sim: Any) -> None:
    job_id = _submit(pipeline, "uploads/cb/replayed.png")
    url = _callback_url_for(sim, -1)
    (job,) = pipeline.run_until_terminal(timeout=60, poll=False).values()
    assert pipeline.wait_idle(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    handoffs, queries, downloads = len(_handoffs(pipeline, job_id)), sim.counters.query, sim.counters.download

    assert _post(url, json.dumps({"id": job.task_id, "status": "succeeded"}).encode()) == 200
    assert _post(url, b"{" + b" " * (64 * 1024) + b"}") == 413

    assert pipeline.wait_idle(30)
    assert len(_handoffs(pipeline, job_id)) == handoffs
    assert (sim.counters.query, sim.counters.download) == (queries, downloads)
    assert pipeline.runtime.store.get(job_id).status is JobStatus.SUCCEEDED


def test_a_flood_of_genuine_succeeded_claims_costs_one_status_call_per_job_per_interval(
    make_pipeline: Callable[..., LocalPipeline], sim: Any
) -> None:
    pipeline = make_pipeline(CHECK_SCHEDULE_SCALE="1")  # the deployed interval (30 s), not the fast tests' 0.6 s
    sim.knobs.callback_drop = 1000  # only the flood below reaches the function
    job_id = _submit(pipeline, "uploads/cb/flooded.png")
    url = _callback_url_for(sim, -1)
    job = pipeline.runtime.store.get(job_id)
    queries = sim.counters.query
    body = json.dumps({"id": job.task_id, "status": "succeeded"}).encode()

    started = time.monotonic()
    answers = [_post(url, body) for _ in range(100)]
    elapsed = time.monotonic() - started
    assert pipeline.wait_idle(30)

    assert set(answers) == {200}
    interval = handoff_interval(pipeline.runtime)
    allowed = 1 + int(elapsed // interval)
    # One status call per job per interval, whatever the bodies say; the intake invokes the worker for a few at most
    # (those that read the job before the first hand-off recorded itself), never one per claim.
    assert sim.counters.query - queries <= allowed
    assert len(_handoffs(pipeline, job_id)) <= allowed + 5
    pipeline.run_until_terminal(timeout=90)
    assert pipeline.wait_idle(30)


# --- the token stays secret -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_no_token_reaches_the_logs_the_job_record_the_sidecar_or_the_event(
    make_pipeline: Callable[..., LocalPipeline], sim: Any, stack: LocalStack
) -> None:
    logs = io.StringIO()
    pipeline = make_pipeline(log_stream=logs)
    sim.knobs.callback_forge = True  # forged requests are logged as refused: never with what they carried
    job_id = _submit(pipeline, "uploads/cb/secret.png")
    token = parse_qs(urlsplit(_callback_url_for(sim, -1)).query)["token"][0]

    # Polled too: the forged premature "succeeded" claim takes the job's one hand-off per interval, so the genuine
    # callback after it is capped; the check that hand-off planned (the back-off) finishes the job.
    (job,) = pipeline.run_until_terminal(timeout=60).values()
    assert pipeline.wait_idle(30)
    assert job.status is JobStatus.SUCCEEDED, job.error

    record = stack.client("dynamodb").get_item(TableName=stack.table_name, Key={"job_id": {"S": job_id}})["Item"]
    sidecar = stack.client("s3").get_object(Bucket=stack.output_bucket, Key=job.outputs.sidecar_key)["Body"].read()
    assert "provider callback" in logs.getvalue()  # the intake did log its outcomes
    for where, text in {
        "logs": logs.getvalue(),
        "job record": json.dumps(record),
        "sidecar": sidecar.decode(),
        "event": json.dumps(event_detail(job)),
    }.items():
        # Not an assert: its message would print the token and the text it was found in.
        if token in text or "token=" in text:
            pytest.fail(f"a callback token reached the {where}")
