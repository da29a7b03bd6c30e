"""The real adapters behind callbacks: the signing key's read, the self-invoke, and each dialect's reading of a body."""

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.stub import Stubber

from seedance_pipeline.adapters.ark_dialect import ArkDialect
from seedance_pipeline.adapters.callback_handoff import LambdaHandoff
from seedance_pipeline.adapters.signing_key import SigningKeySource
from seedance_pipeline.adapters.unified_dialect import UnifiedDialect
from seedance_pipeline.errors import HandoffFailed, SecretUnavailable
from seedance_pipeline.models import ProviderState

SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:callback-key-AbCdEf"
KEY_VALUE = "q1w2e3r4t5y6u7i8o9p0" * 3 + "abcd"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:stack-CallbackFunction-abc"
JOB_ID = "0123456789abcdef0123456789abcdef"


def client(service: Any) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_the_signing_key_is_read_once_and_cached():
    secrets = client("secretsmanager")
    with Stubber(secrets) as stub:
        stub.add_response("get_secret_value", {"ARN": SECRET_ID, "Name": "k", "SecretString": KEY_VALUE})
        source = SigningKeySource(SECRET_ID, SecretsProvider(boto3_client=secrets))
        assert source.get() == KEY_VALUE and source.get() == KEY_VALUE  # the second read is the cache's
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("code", "hint"), [("ThrottlingException", "throttled"), ("AccessDeniedException", "role")])
def test_an_unreadable_signing_key_is_a_secret_outage_that_says_what_to_fix(code, hint):
    secrets = client("secretsmanager")
    with Stubber(secrets) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code)
        with pytest.raises(SecretUnavailable) as raised:
            SigningKeySource(SECRET_ID, SecretsProvider(boto3_client=secrets)).get()
    assert raised.value.cause == code and hint in raised.value.message and "signing key" in raised.value.message


def test_an_empty_signing_key_is_refused():
    secrets = client("secretsmanager")
    with Stubber(secrets) as stub:
        stub.add_response("get_secret_value", {"ARN": SECRET_ID, "Name": "k", "SecretString": " "})
        with pytest.raises(SecretUnavailable, match="empty"):
            SigningKeySource(SECRET_ID, SecretsProvider(boto3_client=secrets)).get()


def test_the_handoff_is_an_asynchronous_invoke_of_the_function_with_the_job_id_only():
    lambda_client = client("lambda")
    with Stubber(lambda_client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {
                "FunctionName": FUNCTION,
                "InvocationType": "Event",
                "Payload": json.dumps({"seedance_callback": {"job_id": JOB_ID}}).encode(),
            },
        )
        LambdaHandoff(lambda: lambda_client).hand_off(JOB_ID, function_name=FUNCTION)
        stub.assert_no_pending_responses()


def test_a_refused_handoff_is_a_domain_error_naming_the_code():
    lambda_client = client("lambda")
    with Stubber(lambda_client) as stub:
        stub.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
        with pytest.raises(HandoffFailed, match="TooManyRequestsException"):
            LambdaHandoff(lambda: lambda_client).hand_off(JOB_ID, function_name=FUNCTION)


@pytest.mark.parametrize(
    ("payload", "state", "task_id"),
    [
        ({"id": "cgt-1", "status": "succeeded"}, ProviderState.SUCCEEDED, "cgt-1"),
        ({"id": "cgt-1", "status": "expired"}, ProviderState.FAILED, "cgt-1"),
        ({"id": "cgt-1", "status": "running"}, ProviderState.RUNNING, "cgt-1"),
        ({"id": "cgt-1", "status": "queued"}, ProviderState.PENDING, "cgt-1"),
        ({"id": "cgt-1", "status": "brand-new-state"}, None, "cgt-1"),
        ({"id": 7, "status": 3}, None, "7"),
        ({}, None, None),
    ],
)
def test_ark_reads_a_callbacks_claim_by_its_own_status_table(payload, state, task_id):
    claim = ArkDialect().read_claim(payload)
    assert (claim.state, claim.task_id) == (state, task_id)


@pytest.mark.parametrize(
    ("payload", "state", "task_id"),
    [
        ({"task_id": "cgt-2", "status": "SUCCESS"}, ProviderState.SUCCEEDED, "cgt-2"),
        ({"code": 0, "data": {"task_id": "cgt-2", "status": "FAILURE"}}, ProviderState.FAILED, "cgt-2"),
        ({"task_id": "cgt-2", "status": " in_progress "}, ProviderState.RUNNING, "cgt-2"),
        ({"task_id": "cgt-2", "status": "UNKNOWN"}, ProviderState.PENDING, "cgt-2"),
        ({"task_id": "cgt-2"}, None, "cgt-2"),
    ],
)
def test_a_gateway_callback_is_read_like_its_status_answers(payload, state, task_id):
    claim = UnifiedDialect().read_claim(payload)
    assert (claim.state, claim.task_id) == (state, task_id)
