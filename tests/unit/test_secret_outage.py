"""A secret outage (throttle, missing secret, KMS denial) is never mistaken for a sent job: jobs wait and resume."""

import logging

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.stub import Stubber

from seedance_pipeline.adapters.api_key import ApiKeySource
from seedance_pipeline.errors import ErrorCode, Outcome, SecretUnavailable, outcome_of
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
SECRET_ID = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:seedance-key-AbCdEf"
KEY_VALUE = "sk-very-secret-value"


class SecretsManager:
    """A real Secrets Manager client with its answers stubbed: each `fail` queues an error for the next read."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.reads = 0
        self.client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue", self._count)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def _count(self, **_) -> None:
        self.reads += 1

    def fail(self, code: str, status: int = 400) -> None:
        self.stubber.add_client_error("get_secret_value", service_error_code=code, http_status_code=status)

    def answer(self) -> None:
        self.stubber.add_response(
            "get_secret_value", {"ARN": SECRET_ID, "Name": "seedance-key", "SecretString": KEY_VALUE}
        )


def runtime_reading_the_key(secrets: SecretsManager, **settings):
    runtime, store, storage, provider = make_runtime(**settings)
    source = ApiKeySource(SECRET_ID, SecretsProvider(boto3_client=secrets.client))

    def provider_factory(force_fetch: bool):
        source.get(force_fetch=force_fetch)  # as build_runtime does: the client is built with the key
        return provider

    runtime.provider_factory = provider_factory
    return runtime, store, storage, provider


def upload(key="uploads/cat.jpg", sequencer="01"):
    return Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1")


def test_a_secret_outage_is_a_domain_error_that_says_what_to_fix_and_never_the_value():
    secrets = SecretsManager()
    source = ApiKeySource(SECRET_ID, SecretsProvider(boto3_client=secrets.client))
    for code, hint in [
        ("ThrottlingException", "throttled"),
        ("ResourceNotFoundException", "does not exist"),
        ("DecryptionFailure", "KMS"),
        ("AccessDeniedException", "GetSecretValue"),
    ]:
        secrets.fail(code)
        with pytest.raises(SecretUnavailable) as raised:
            source.get()
        error = raised.value
        assert error.code == ErrorCode.SECRET_UNAVAILABLE and outcome_of(error) is Outcome.TRY_LATER
        assert error.cause == code and SECRET_ID in error.message and hint in error.message
    secrets.answer()
    assert source.get() == KEY_VALUE


def test_a_secret_outage_at_upload_leaves_the_job_waiting_and_it_is_sent_once_the_secret_is_readable(caplog):
    secrets = SecretsManager()
    runtime, store, storage, provider = runtime_reading_the_key(secrets)
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    secrets.fail("ThrottlingException")
    with caplog.at_level(logging.ERROR):
        outcome = accept_upload(upload(), runtime, owner="s")

    job = store.get(outcome.job_id)
    assert job.status is JobStatus.WAITING and job.submission_started_at is None
    assert job.last_error.code == "SECRET_UNAVAILABLE" and job.attempts == 0
    assert store.slots == set() and provider.submissions == []
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.secret_id == SECRET_ID and logged.cause == "ThrottlingException" and "rerun" not in logged.fix
    assert KEY_VALUE not in caplog.text and KEY_VALUE not in str(logged.__dict__)

    secrets.answer()
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    job = store.get(outcome.job_id)
    assert job.task_id and job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING) and len(provider.submissions) == 1


def test_a_secret_outage_while_checking_keeps_the_job_live():
    secrets = SecretsManager()
    runtime, store, storage, provider = runtime_reading_the_key(secrets)
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    secrets.answer()
    job_id = accept_upload(upload(), runtime, owner="s").job_id
    runtime.refresh_provider()  # a cold start: the next check reads the secret again
    secrets.fail("InternalServiceError", 500)
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    job = store.get(job_id)
    assert job.status is JobStatus.SUBMITTED and job.last_error.code == "SECRET_UNAVAILABLE"
    assert job.lease_owner is None and store.items[job_id]["due_shard"] is not None

    secrets.answer()
    for _ in range(10):
        runtime.clock.advance(30)
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert store.get(job_id).status is JobStatus.SUCCEEDED


def test_waiting_jobs_stop_at_the_first_secret_outage_of_a_pass():
    secrets = SecretsManager()
    runtime, store, storage, provider = runtime_reading_the_key(secrets)
    for n in range(5):
        storage.add(BUCKET, f"uploads/{n}.jpg", image_bytes())
        secrets.fail("ThrottlingException")
        runtime.refresh_provider()
        runtime.clock.advance(11)  # past the retry pause: each upload really asks Secrets Manager
        accept_upload(upload(f"uploads/{n}.jpg", f"0{n}"), runtime, owner="s")
    assert {j.status for j in store.jobs()} == {JobStatus.WAITING}
    secrets.reads = 0
    runtime.clock.advance(60)
    report = run_poll(runtime, owner="p", time_left=lambda: 300.0)  # Secrets Manager keeps failing all along
    # Each pass meets the outage with its first waiting job and stops there: one job, at most one secret read.
    assert report.passes >= 1 and report.checked == report.passes and provider.submissions == []
    assert secrets.reads <= report.passes
    assert {j.status for j in store.jobs()} == {JobStatus.WAITING} and store.slots == set()


def test_a_secret_outage_costs_one_secret_read_per_pause_not_one_per_job():
    secrets = SecretsManager()
    runtime, store, storage, provider = runtime_reading_the_key(secrets)
    secrets.answer()
    for n in range(8):
        storage.add(BUCKET, f"uploads/{n}.jpg", image_bytes())
        accept_upload(upload(f"uploads/{n}.jpg", f"0{n}"), runtime, owner="s")
    runtime.refresh_provider()
    secrets.reads = 0
    secrets.fail("ThrottlingException")
    runtime.clock.advance(60)
    report = run_poll(runtime, owner="p", time_left=lambda: 5.0 + runtime.settings.poll_deadline_margin_seconds)
    assert report.outcomes.get("SUBMITTED", 0) + report.outcomes.get("RUNNING", 0) == 8
    assert secrets.reads == 1
    assert all(j.last_error.code == "SECRET_UNAVAILABLE" for j in store.jobs())


def test_an_empty_secret_is_a_key_problem_that_keeps_the_job_waiting():
    secrets = SecretsManager()
    runtime, store, storage, provider = runtime_reading_the_key(secrets)
    storage.add(BUCKET, "uploads/cat.jpg", image_bytes())
    secrets.stubber.add_response("get_secret_value", {"ARN": SECRET_ID, "Name": "seedance-key", "SecretString": " "})
    outcome = accept_upload(upload(), runtime, owner="s")
    job = store.get(outcome.job_id)
    assert job.status is JobStatus.WAITING and job.last_error.code == "PROVIDER_AUTH"
    assert job.submission_started_at is None and store.slots == set()
