"""Callback tokens stay out of job errors, logs and events in every quoting shape a provider may echo them in;
a rotation of the signing key never refuses genuine URLs; a body's size is judged in bytes, before the token."""

import base64
import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.adapters.signing_key import SigningKeySource
from seedance_pipeline.errors import ProviderRejected
from seedance_pipeline.logic.callback_intake import MAX_BODY_BYTES, CallbackOutcome, answer_callback
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Job, JobStatus, TaskResult, Upload
from seedance_pipeline.redaction import redact_tokens
from seedance_pipeline.rules.callback_token import callback_token, callback_url_for
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.triggers.callback_events import CallbackRequest
from tests.support.expect import present
from tests.support.fakes import FakeClock, FakeSecretText, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
BASE = "https://abc.lambda-url.us-east-1.on.aws/"
CALLBACKS: dict[str, Any] = {
    "provider_api": "ark",
    "callback_url": BASE,
    "callback_signing_secret_id": "arn:aws:secretsmanager:x:1:secret:cb",
    "callback_worker_function": "stack-CallbackWorkerFunction-abc",
}
KEY, NEW_KEY = "k" * 64, "n" * 64
UPLOAD = Upload(bucket=BUCKET, key="uploads/cat.jpg", sequencer="01", etag="e1")
JOB_ID = job_id_for(UPLOAD)
TOKEN = callback_token(KEY, JOB_ID)
URL = callback_url_for(BASE, JOB_ID, TOKEN)


def echoes(token: str) -> list[str]:
    """How a gateway or an SDK may quote our URL's query back in an error message."""
    url = callback_url_for(BASE, JOB_ID, token)
    return [
        f"{{'job': ['{JOB_ID}'], 'token': ['{token}']}}",  # Python: repr(parse_qs(query))
        f"token=[{token}]",
        f"map[job:[{JOB_ID}] token:[{token}]]",  # Go: fmt.Sprint(url.Values)
        f"token: {token}",
        f"token = {token}",
        f'{{\\"token\\": \\"{token}\\"}}',  # JSON inside a JSON string
        quote(quote(url, safe=""), safe=""),  # a twice percent-encoded URL
        f"callback_url={BASE}?job&#61;{JOB_ID}&amp;token&#61;{token}",  # HTML-escaped
    ]


def everything_kept(store: Any, runtime: Any, caplog: Any, capsys: Any) -> str:
    records = str(store.items)
    events = "".join(job.model_dump_json() for job in runtime.events.published)
    logs = caplog.text + capsys.readouterr().out + "".join(str(r.__dict__) for r in caplog.records)
    return records + events + logs


SHAPES = [
    "parse_qs repr",
    "token=[...]",
    "go url.Values",
    "token: ",
    "token = ",
    "json in json",
    "twice encoded",
    "&#61;",
]


@pytest.mark.parametrize("echo", echoes(TOKEN), ids=SHAPES)  # ids: test output never shows a token
def test_a_refusal_that_quotes_the_token_in_any_shape_keeps_it_out_of_error_log_and_event(caplog, capsys, echo):
    runtime, store, storage, provider = make_runtime(**CALLBACKS)
    storage.add(BUCKET, UPLOAD.key, image_bytes())
    provider.submit_error = ProviderRejected(f"HTTP 400 InvalidParameter: bad callback ({echo})")
    with caplog.at_level(logging.DEBUG):
        accept_upload(UPLOAD, runtime, owner="s")
    job = store.job(JOB_ID)
    assert job.status is JobStatus.FAILED and "InvalidParameter" in present(job.error).message
    kept = everything_kept(store, runtime, caplog, capsys)
    assert runtime.events.published and TOKEN not in kept and TOKEN[:12] not in kept


@given(
    token=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=43, max_size=43)
)
def test_a_token_this_process_never_signed_is_still_redacted_in_every_common_shape(token):
    for echo in echoes(token):
        assert token not in redact_tokens(f"the provider said: {echo} (HTTP 400)")


# --- 14. rotation and body size -------------------------------------------------------------------------------------


def test_a_forged_tokens_probe_never_hides_the_previous_key_after_a_rotation():
    secrets = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    secret_id = "arn:aws:secretsmanager:us-east-1:1:secret:cb"
    with Stubber(secrets) as stub:
        source = SigningKeySource(secret_id, SecretsProvider(boto3_client=secrets), clock=FakeClock())
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": KEY})
        stub.add_client_error("get_secret_value", service_error_code="ResourceNotFoundException")
        assert source.get() == KEY and source.previous() is None  # a forged token's probe: never rotated yet
        # The key is rotated; the next forced read sees the new value and AWSPREVIOUS now holds the old one.
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": NEW_KEY})
        stub.add_response("get_secret_value", {"ARN": secret_id, "Name": "cb", "SecretString": KEY})
        assert source.get(force_fetch=True) == NEW_KEY
        assert source.previous() == KEY  # a genuine URL signed before the rotation is still recognised
        stub.assert_no_pending_responses()


def test_a_body_over_the_limit_in_bytes_is_refused_as_too_large_before_its_token():
    runtime, store, _, _ = make_runtime(**CALLBACKS)
    body = json.dumps({"status": "succeeded", "note": "文" * 40_000}, ensure_ascii=False)  # ~120 KB, 40 k chars
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    request = CallbackRequest(method="POST", job_id=JOB_ID, token="forged" + "x" * 37, body=body)
    answer = answer_callback(request, runtime)
    assert (answer.status_code, answer.outcome) == (413, CallbackOutcome.REFUSED)


def test_a_poller_redacts_by_value_a_token_it_never_signed_in_a_shape_no_pattern_knows(monkeypatch):
    # A cold poller: the job was sent by another process under a key this test never signs with, so the token
    # is known here only as the poller recomputes it. Computed by hand (not callback_token, which remembers it).
    key = "p" * 64
    runtime, store, _, provider = make_runtime(**CALLBACKS)
    runtime.signing_key = FakeSecretText(value=key)
    task_id = provider.submit({"model": "m"})
    digest = hmac.new(key.encode(), b"seedance-callback/v1/" + JOB_ID.encode(), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    echo = f"callback {BASE}?job={JOB_ID}&tok%65n={token} unreachable"  # `tok%65n`: no `token` marker to find
    assert token in redact_tokens(echo)  # no pattern catches this shape: only the value can
    provider.ready_after, provider.outcome = 0, {"state": "FAILED", "failure_reason": "x"}
    now = runtime.clock()
    job = Job(
        job_id=JOB_ID,
        status=JobStatus.SUBMITTED,
        source_bucket=BUCKET,
        source_key=UPLOAD.key,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        task_id=task_id,
        expects_callback=True,
        next_check_at=now,
    )
    store.claim(job, due_shard="0")
    real_get = provider.get

    def get(task: str, *, deadline: float | None = None) -> TaskResult:
        # The provider's text reaches the pipeline inside its answer (the client redacts as it parses).
        answer = real_get(task, deadline=deadline)
        return answer.model_copy(update={"failure_reason": redact_tokens(echo)})

    monkeypatch.setattr(provider, "get", get)
    run_poll(runtime, owner="poller", time_left=lambda: 60.0)
    failed = store.job(JOB_ID)
    assert failed.status is JobStatus.FAILED and runtime.events.published
    # Not an assert on the texts: its message would print the token.
    if token in failed.model_dump_json() + runtime.events.published[-1].model_dump_json():
        pytest.fail("the token reached the job's error or its event")
