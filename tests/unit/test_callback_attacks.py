"""A hostile review of provider callbacks: leaks of the token, parsing quirks, races with the submitter and poller."""

import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.stub import Stubber
from pydantic import ValidationError

from seedance_pipeline.adapters.api_key import CACHE_SECONDS
from seedance_pipeline.adapters.ark_dialect import matches as ark_matches
from seedance_pipeline.adapters.ark_dialect import parse_task as ark_parse_task
from seedance_pipeline.adapters.signing_key import SigningKeySource
from seedance_pipeline.errors import ProviderRejected, SubmissionUncertain
from seedance_pipeline.logic.callback_intake import CallbackOutcome, answer_callback
from seedance_pipeline.logic.callback_worker import HandoffResult, run_handoff
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.status_check import check_job
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Job, JobError, JobStatus, Upload, VideoRequest
from seedance_pipeline.observability import MetricName, metrics
from seedance_pipeline.rules.callback_token import HANDOFF_OWNER_PREFIX, callback_token, callback_url_for
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.video_request import provider_body, provider_body_for
from seedance_pipeline.settings import Settings
from seedance_pipeline.triggers.callback_events import CallbackRequest, parse_callback_event, parse_handoff_event
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeHandoff, FakeSecretText, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
FUNCTION = "stack-CallbackWorkerFunction-abc"
BASE = "https://abc.lambda-url.us-east-1.on.aws/"
CALLBACKS: dict[str, Any] = {
    "provider_api": "ark",
    "callback_url": BASE,
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
    "callback_worker_function": FUNCTION,
}
KEY = "k" * 64  # FakeSecretText's value
UPLOAD = Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1")
JOB_ID = job_id_for(UPLOAD)
TOKEN = callback_token(KEY, JOB_ID)
URL = callback_url_for(BASE, JOB_ID, TOKEN)


def stack(**settings: Any) -> Any:
    runtime, store, storage, provider = make_runtime(**{**CALLBACKS, **settings})
    storage.add(BUCKET, UPLOAD.key, image_bytes())
    return runtime, store, storage, provider


def post(runtime: Any, body: dict[str, Any] | str, *, job_id: str = JOB_ID, token: str = TOKEN) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    request = CallbackRequest(method="POST", job_id=job_id, token=token, body=text)
    return answer_callback(request, runtime)


def fake_handoff(runtime: Any) -> FakeHandoff:
    handoff = runtime.handoff
    assert isinstance(handoff, FakeHandoff)
    return handoff


def handoffs(runtime: Any) -> list[Any]:
    results = []
    for event in fake_handoff(runtime).take():
        results.append(run_handoff(parse_handoff_event(event), runtime, owner="callback"))
    return results


def everything_kept(store: Any, runtime: Any, caplog: Any, capsys: Any) -> str:
    """Every place a token could end up: the records, the events, the log lines (with their extra fields)."""
    records = str(store.items)
    events = "".join(job.model_dump_json() for job in runtime.events.published)
    logs = caplog.text + capsys.readouterr().out + "".join(str(r.__dict__) for r in caplog.records)
    return records + events + logs


# --- 1. the token leaking through what the provider says back -------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        URL,
        URL.replace("=", "%3D").replace("&", "%26"),  # the whole URL percent-encoded in a message
        URL.replace("=", "\\u003d").replace("&", "\\u0026"),  # or JSON-escaped by a gateway
    ],
)
def test_a_refusal_that_echoes_the_callback_url_leaves_the_token_nowhere(caplog, capsys, echo):
    runtime, store, _, provider = stack()
    provider.submit_error = ProviderRejected(
        f"HTTP 400 InvalidParameter: the parameter callback_url specified in the request ({echo}) is not valid",
        code="InvalidParameter",
    )
    with caplog.at_level(logging.DEBUG):
        outcome = accept_upload(UPLOAD, runtime, owner="s")
    assert outcome.outcome is JobStatus.FAILED and "callback_url" in present(outcome.reason)
    kept = everything_kept(store, runtime, caplog, capsys) + str(outcome.reason)
    assert "InvalidParameter" in kept and TOKEN not in kept and TOKEN[:20] not in kept


def test_a_lost_answer_whose_text_echoes_the_url_leaves_the_token_nowhere(caplog, capsys):
    runtime, store, _, provider = stack()
    provider.submit_error = SubmissionUncertain(f"the provider answered HTTP 500 : could not call {URL}")
    with caplog.at_level(logging.DEBUG):
        accept_upload(UPLOAD, runtime, owner="s")
    job = store.job(JOB_ID)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert TOKEN not in everything_kept(store, runtime, caplog, capsys)


def test_a_failed_task_whose_reason_echoes_the_callback_url_keeps_no_token():
    payload = {
        "id": "cgt-1",
        "status": "failed",
        "error": {"code": "InvalidParameter", "message": f"callback_url {URL} unreachable"},
        "callback_url": URL,
    }
    result = ark_parse_task("cgt-1", payload)
    assert "InvalidParameter" in present(result.failure_reason) and TOKEN not in str(result.model_dump())


def test_a_record_never_keeps_a_token_even_when_a_text_is_cut_through_it():
    runtime, store, _, _ = stack()
    # A long message cut just inside the token would keep its first characters if it were cut before redaction.
    message = "x" * (2000 - 30) + f" see {URL}"
    job = Job(job_id=JOB_ID, status=JobStatus.WAITING, source_bucket=BUCKET, source_key="k", created_at=0, updated_at=0)
    bounded = job.model_copy(
        update={"notes": [f"note {URL}"], "provider_status": URL, "last_error": JobError(code="X", message=message)}
    ).bounded()
    assert TOKEN[:8] not in bounded.model_dump_json()


# --- 2. a unified gateway's CallbackField must not overwrite the request ---------------------------------------


REQUEST = VideoRequest(
    prompt="p",
    model="m",
    resolution="720p",
    ratio="16:9",
    duration=5,
    watermark=False,
    camerafixed=False,
    return_last_frame=False,
    generate_audio=False,
    seed=7,
)
UNIFIED = {**CALLBACKS, "provider_api": "unified", "api_base_url": "https://gateway.example.com"}


@pytest.mark.parametrize("field", sorted(provider_body(REQUEST, ["https://img"])))
def test_a_callback_field_naming_a_field_of_the_request_stops_the_cold_start(field):
    with pytest.raises(ValidationError, match="CALLBACK_FIELD"):
        Settings(jobs_table_name="t", **{**UNIFIED, "callback_field": field})


def test_a_callback_field_of_its_own_carries_the_url_beside_an_intact_request():
    settings = Settings(jobs_table_name="t", **{**UNIFIED, "callback_field": "notify_url"})
    body = provider_body_for(settings, REQUEST, ["https://img"], ImageMode.FIRST_FRAME, callback_url=URL)
    assert body == {**provider_body(REQUEST, ["https://img"]), "notify_url": URL}


# --- 3. races: a callback before the submitter saved the task, a hand-off meeting a lease ------------------------


def callback_within_the_post(runtime: Any, provider: Any, answers: list[Any], *, then: Any = None) -> None:
    """The provider calls back while our POST is still being answered: the record does not hold the task yet."""
    real_submit = provider.submit

    def submit(body: dict[str, Any], *, deadline: float | None = None) -> str:
        task_id: str = real_submit(body, deadline=deadline)
        answers.append(post(runtime, {"id": task_id, "status": "succeeded"}))
        if then is not None:
            then()
        return task_id

    provider.submit = submit


def test_a_callback_that_beats_the_submitters_save_still_delivers_at_once():
    runtime, store, _, provider = stack()
    provider.ready_after = 0  # a task done within milliseconds (an instant moderation failure is as quick)
    answers: list[Any] = []
    callback_within_the_post(runtime, provider, answers)
    accept_upload(UPLOAD, runtime, owner="s")
    assert [a.outcome for a in answers] == [CallbackOutcome.ACCEPTED]
    assert handoffs(runtime) == [JobStatus.SUCCEEDED]
    assert store.job(JOB_ID).status is JobStatus.SUCCEEDED and provider.gets == 1


def test_a_handoff_that_meets_the_submission_in_flight_ends_at_once_and_the_net_delivers():
    runtime, store, _, provider = stack()
    provider.ready_after = 0
    answers: list[Any] = []
    results: list[Any] = []
    slept: list[float] = []
    runtime.sleep = slept.append
    # The worker runs while the submitter still holds the job: no task recorded yet, nothing to wait for.
    callback_within_the_post(runtime, provider, answers, then=lambda: results.extend(handoffs(runtime)))
    accept_upload(UPLOAD, runtime, owner="s")
    assert [a.outcome for a in answers] == [CallbackOutcome.ACCEPTED]
    assert results == [HandoffResult.IGNORED] and slept == [] and provider.gets == 0
    job = store.job(JOB_ID)
    runtime.sleep = runtime.clock.advance
    runtime.clock.advance(present(job.next_check_at) - runtime.clock())
    run_poll(runtime, owner="p", time_left=lambda: 300.0)  # the net: the job's own first check
    assert store.job(JOB_ID).status is JobStatus.SUCCEEDED and provider.gets == 1


def submitted(**settings: Any) -> Any:
    runtime, store, storage, provider = stack(**settings)
    accept_upload(UPLOAD, runtime, owner="s")
    task_id = present(store.job(JOB_ID).task_id)
    return runtime, store, provider, task_id


def test_a_duplicate_handoff_leaves_the_job_to_the_first_at_once_without_a_status_call():
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    for _ in range(2):
        post(runtime, {"id": task_id, "status": "succeeded"})
    # The second is capped at the intake (the first took the job moments ago) unless both read it before: here both
    # did, as two concurrent callbacks would.
    first, second = [parse_handoff_event(event) for event in fake_handoff(runtime).take()]
    leased = store.acquire_lease(
        store.job(JOB_ID), owner=HANDOFF_OWNER_PREFIX + "first", now=runtime.clock(), lease_seconds=300
    )
    waits: list[float] = []
    runtime.sleep = waits.append
    assert run_handoff(second, runtime, owner="second") is HandoffResult.LEASED
    assert waits == [] and provider.gets == 0
    check_job(leased, runtime, owner=HANDOFF_OWNER_PREFIX + "first")  # the first delivers
    assert store.job(JOB_ID).status is JobStatus.SUCCEEDED and provider.gets == 1
    assert run_handoff(first, runtime, owner="late") is HandoffResult.IGNORED and provider.gets == 1
    assert [j.status for j in runtime.events.published] == [JobStatus.SUCCEEDED]


def test_a_handoff_behind_a_lease_reads_the_job_once():
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    store.acquire_lease(store.job(JOB_ID), owner="poller", now=runtime.clock(), lease_seconds=300)
    post(runtime, {"id": task_id, "status": "succeeded"})
    reads: list[str] = []
    real_get = store.get

    def counted(job_id: str) -> Job | None:
        reads.append(job_id)
        return real_get(job_id)

    store.get = counted
    assert handoffs(runtime) == [HandoffResult.LEASED]
    assert len(reads) == 1


def test_a_handoff_leaves_a_leased_job_to_its_holder_at_once():
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    store.acquire_lease(store.job(JOB_ID), owner="poller", now=runtime.clock(), lease_seconds=300)
    post(runtime, {"id": task_id, "status": "succeeded"})
    started = runtime.clock()
    assert handoffs(runtime) == [HandoffResult.LEASED]
    assert runtime.clock() == started and provider.gets == 0


# --- 4. the signing key rotated (a new value put in the secret) -------------------------------------------------

NEW_KEY = "n" * 64


def fake_key(runtime: Any) -> FakeSecretText:
    key = runtime.signing_key
    assert isinstance(key, FakeSecretText)
    return key


def test_a_url_signed_before_the_key_was_rotated_still_brings_its_check_forward():
    runtime, store, provider, task_id = submitted()  # its URL carries a token under the old key
    key = fake_key(runtime)
    key.value, key.previous_value = NEW_KEY, KEY
    runtime.clock.advance(50)
    assert post(runtime, {"id": task_id, "status": "succeeded"}).outcome is CallbackOutcome.ACCEPTED
    assert handoffs(runtime) == [JobStatus.SUCCEEDED]


def test_a_function_still_holding_the_old_key_accepts_a_url_signed_with_the_new_one():
    runtime, store, provider, task_id = submitted()
    key = fake_key(runtime)
    key.fresh_value = NEW_KEY  # the secret changed; this container's cache did not
    new_token = callback_token(NEW_KEY, JOB_ID)
    runtime.clock.advance(50)
    assert post(runtime, {"id": task_id, "status": "succeeded"}, token=new_token).outcome is CallbackOutcome.ACCEPTED


def test_forged_tokens_cannot_drive_reads_of_the_signing_key():
    runtime, store, provider, task_id = submitted()
    key = fake_key(runtime)
    forged = [TOKEN[:-2] + f"{n:02d}" for n in range(50)]
    answers = [post(runtime, {"status": "succeeded"}, token=token) for token in forged]
    assert {a.status_code for a in answers} == {403}
    assert key.forced_reads <= 1


def test_a_token_for_the_right_job_under_another_stacks_key_is_refused():
    runtime, store, provider, task_id = submitted()
    fake_key(runtime).previous_value = KEY[:-1] + "x"
    assert (
        post(runtime, {"status": "succeeded"}, token=callback_token("another-stack-key" * 4, JOB_ID)).status_code == 403
    )


def stubbed_source() -> tuple[Any, Any]:
    secrets = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    clock = FakeClock()
    return secrets, clock


def test_the_previous_signing_key_is_read_once_and_cached_even_when_there_is_none():
    secrets, clock = stubbed_source()
    secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:cb"
    with Stubber(secrets) as stub:
        stub.add_client_error(
            "get_secret_value",
            service_error_code="ResourceNotFoundException",
            expected_params={"SecretId": secret_id, "VersionStage": "AWSPREVIOUS"},
        )
        source = SigningKeySource(secret_id, SecretsProvider(boto3_client=secrets), clock=clock)
        assert [source.previous() for _ in range(20)] == [None] * 20  # never rotated: one read, then the cache
        stub.assert_no_pending_responses()
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": KEY})
        clock.advance(CACHE_SECONDS)
        assert source.previous() == KEY and source.previous() == KEY
        stub.assert_no_pending_responses()


def test_the_previous_key_is_cached_apart_from_the_current_one():
    secrets, clock = stubbed_source()
    secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:cb"
    with Stubber(secrets) as stub:
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": NEW_KEY})
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": KEY})
        source = SigningKeySource(secret_id, SecretsProvider(boto3_client=secrets), clock=clock)
        assert (source.get(), source.previous(), source.get(), source.previous()) == (NEW_KEY, KEY, NEW_KEY, KEY)
        stub.assert_no_pending_responses()


# --- 5. quirks of the URL and the body, as Lambda hands them over ------------------------------------------------

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "callback-url-request.json").read_text())


def url_event(query: dict[str, str], body: str, *, is_base64: bool = False) -> dict[str, Any]:
    """A Function URL request; Lambda joins a repeated query parameter's values with commas, and decodes them."""
    return {**EVENT, "queryStringParameters": query, "body": body, "isBase64Encoded": is_base64}


def answer_to(runtime: Any, event: dict[str, Any]) -> Any:
    parsed = parse_callback_event(event)
    assert isinstance(parsed, CallbackRequest)
    return answer_callback(parsed, runtime)


@pytest.mark.parametrize(
    "query",
    [
        {"job": f"{JOB_ID},{JOB_ID}", "token": TOKEN},  # job=..&job=..
        {"job": JOB_ID, "token": f"{TOKEN},{TOKEN}"},  # token=..&token=..
        {"job": JOB_ID.upper(), "token": TOKEN},
        {"job": f" {JOB_ID}", "token": TOKEN},
        {"job": JOB_ID, "token": f"{TOKEN} "},
        {"job": JOB_ID, "token": f"{TOKEN}="},  # base64 padding added
        {"job": JOB_ID, "token": ""},
        {"token": TOKEN},
    ],
)
def test_a_mangled_job_or_token_is_refused_without_reading_the_job(query):
    runtime, store, provider, task_id = submitted()
    reads: list[str] = []
    real_get = store.get

    def counted(job_id: str) -> Job | None:
        reads.append(job_id)
        return real_get(job_id)

    store.get = counted
    answer = answer_to(runtime, url_event(query, json.dumps({"id": task_id, "status": "succeeded"})))
    assert answer.status_code == 403 and reads == [] and fake_handoff(runtime).queued == []


@pytest.mark.parametrize(
    ("body", "is_base64"),
    [
        ("[" * 30_000 + "]" * 30_000, False),  # nested past the parser's recursion limit, under 64 KiB
        ("eyJzdGF0dXMiOiAic3VjY2VlZGVkIn0", True),  # base64 without its padding
        ("eyJzdGF0dXMiOiAic3VjY2VlZGVkIn0=\n", True),
        ('{"status": "succeeded", "id": {"$ne": null}}', False),
        ('{"status": ["succeeded"], "id": true}', False),
    ],
)
def test_a_body_that_cannot_be_read_is_left_to_the_status_call(body, is_base64):
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    answer = answer_to(runtime, url_event({"job": JOB_ID, "token": TOKEN}, body, is_base64=is_base64))
    assert answer.outcome is CallbackOutcome.ACCEPTED
    assert handoffs(runtime) == [JobStatus.SUCCEEDED] and provider.gets == 1


def test_a_task_id_sent_as_a_number_names_the_same_task():
    runtime, store, provider, _ = submitted()
    job = store.job(JOB_ID)
    numeric = job.model_copy(update={"task_id": "20261201"})  # a gateway with numeric ids
    store.put_unconditionally(numeric, due_shard=store.items[JOB_ID]["due_shard"])
    provider.tasks["20261201"] = provider.tasks[present(job.task_id)]
    runtime.clock.advance(50)
    assert post(runtime, {"id": 20261201, "status": "succeeded"}).outcome is CallbackOutcome.ACCEPTED
    assert post(runtime, {"id": 20261202, "status": "succeeded"}).outcome is CallbackOutcome.IGNORED


# --- 6. the later first check of a job expecting a callback --------------------------------------------------------


@pytest.mark.parametrize("minutes", [1, 2, 5])
def test_the_later_first_check_never_passes_the_jobs_age_limit(minutes):
    runtime, store, provider, _ = submitted(resolution="1080p", duration=10, max_job_age_minutes=minutes)
    job = store.job(JOB_ID)
    assert job.expects_callback
    assert present(job.next_check_at) <= present(job.submitted_at) + minutes * 60 + 1


# --- 7. the lost-answer look-up: Ark's list shows no callback_url, so a task is recognised by its seed alone ------


def listed(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The task as Ark's list shows it: the body's settings and seed, never its content or callback_url."""
    shown = {k: v for k, v in body.items() if k not in ("content", "callback_url")}
    return {"id": "cgt-listed", "created_at": 1000, **shown, **changes}


def ark_request(callback_url: str | None, seed: int = 1_234_567) -> dict[str, Any]:
    settings = Settings(jobs_table_name="t", **CALLBACKS)
    request = REQUEST.model_copy(update={"seed": seed})
    return provider_body_for(settings, request, ["https://img"], ImageMode.FIRST_FRAME, callback_url=callback_url)


def test_a_listed_task_showing_our_seed_is_ours():
    body = ark_request(URL)
    assert ark_matches(listed(body), body, since=900, until=1100)


def test_a_listed_task_calling_back_another_job_is_never_adopted_as_ours():
    # Two uploads with the default prompt at the same moment: when our answer is lost and our POST made no task,
    # the other job's task matches every setting; only its seed (its own job's) tells it apart.
    body = ark_request(URL)
    other_job = "0" * 32
    other = ark_request(callback_url_for(BASE, other_job, callback_token(KEY, other_job)), seed=7_654_321)
    assert not ark_matches(listed(other), body, since=900, until=1100)


def test_a_callback_url_a_list_item_might_show_is_no_evidence_either_way():
    body = ark_request(URL)
    assert not ark_matches(listed(body, seed=7, callback_url=URL), body, since=900, until=1100)


# --- 8. a CALLBACK_URL that would lose every job's token ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/cb#section",  # the query would land in the fragment, never sent
        "https://hooks.example.com/cb?token=static",  # Lambda would join the two tokens with a comma
        "https://hooks.example.com/cb?a=1&job=x",
    ],
)
def test_a_callback_url_that_would_garble_the_jobs_query_stops_the_cold_start(url):
    with pytest.raises(ValidationError, match="CALLBACK_URL"):
        Settings(jobs_table_name="t", **{**CALLBACKS, "callback_url": url})


def test_a_callback_url_with_a_query_of_its_own_is_kept():
    settings = Settings(
        jobs_table_name="t", **{**CALLBACKS, "callback_url": "https://hooks.example.com/cb?route=video"}
    )
    assert settings.sends_callbacks


# --- 9. CallbackMode turned off with jobs in flight ---------------------------------------------------------------


def test_a_job_sent_with_a_callback_url_finishes_by_polling_once_callbacks_are_turned_off():
    on, store, storage, provider = stack()
    accept_upload(UPLOAD, on, owner="s")
    job = store.job(JOB_ID)
    assert job.expects_callback
    off, _, _, _ = make_runtime(
        on.clock, provider=provider, storage=storage, provider_api="ark", poll_window_seconds=0.5
    )
    off.store = store  # the same table, now read by a stack without callbacks
    off.clock.advance(present(job.next_check_at) - off.clock() + 1)
    run_poll(off, owner="p", time_left=lambda: 300.0)
    assert store.job(JOB_ID).status is JobStatus.SUCCEEDED and provider.gets == 1


# --- 10. a provider that never calls back is visible, not just slow -----------------------------------------------


def test_a_job_the_poll_net_finds_done_counts_as_a_missed_callback():
    metrics.clear_metrics()
    runtime, store, provider, _ = submitted(poll_window_seconds=0.5)
    runtime.clock.advance(present(store.job(JOB_ID).next_check_at) - runtime.clock() + 1)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.job(JOB_ID).status is JobStatus.SUCCEEDED
    assert metrics.metric_set[MetricName.CALLBACKS_MISSED]["Value"] == [1.0]
    metrics.clear_metrics()


def test_a_job_its_callback_delivered_counts_no_missed_callback():
    metrics.clear_metrics()
    runtime, store, provider, task_id = submitted()
    runtime.clock.advance(50)
    post(runtime, {"id": task_id, "status": "succeeded"})
    assert handoffs(runtime) == [JobStatus.SUCCEEDED]
    assert MetricName.CALLBACKS_MISSED not in metrics.metric_set
    metrics.clear_metrics()


def test_a_blank_previous_signing_key_is_no_key():
    secrets, clock = stubbed_source()
    secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:cb"
    with Stubber(secrets) as stub:
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": "  "})
        assert SigningKeySource(secret_id, SecretsProvider(boto3_client=secrets), clock=clock).previous() is None
    runtime, _, _, _ = submitted()
    fake_key(runtime).previous_value = ""  # an empty key would sign anyone's token: it is never offered
    assert runtime.other_signing_keys() == [KEY]


# --- 11. a genuine callback for a job whose submission ended uncertain -------------------------------------------


def test_a_callback_for_a_job_whose_submission_ended_uncertain_names_the_task_for_the_operator(caplog):
    runtime, store, _, provider = stack()
    provider.submit_error = SubmissionUncertain("no answer from the provider within the read timeout")
    accept_upload(UPLOAD, runtime, owner="s")
    job = store.job(JOB_ID)
    assert job.status is JobStatus.FAILED and present(job.error).code == "SUBMISSION_UNCERTAIN"
    with caplog.at_level(logging.INFO):
        answer = post(runtime, {"id": "cgt-made-after-all", "status": "succeeded"})
    assert answer.outcome is CallbackOutcome.IGNORED and fake_handoff(runtime).queued == []
    (line,) = [r for r in caplog.records if "uncertain" in r.getMessage()]
    assert line.__dict__["claimed_task_id"] == "cgt-made-after-all" and TOKEN not in caplog.text
