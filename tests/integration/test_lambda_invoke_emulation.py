"""The local Lambda Invoke API: an unchanged boto3 lambda client, pointed at it by AWS_ENDPOINT_URL_LAMBDA."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from seedance_local.lambda_invoke import LambdaInvokeEmulator, parse_function_name
from seedance_local.stack_template import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY


class Dummy:
    """A registered function: records each event and context; raises when the event asks it to."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, event: Any, context: Any) -> Any:
        self.release.wait(timeout=30)
        self.calls.append((event, context))
        if isinstance(event, dict) and event.get("fail"):
            raise ValueError("asked to fail")
        return {"echo": event, "arn": context.invoked_function_arn}


@pytest.fixture
def emulator() -> Iterator[LambdaInvokeEmulator]:
    with LambdaInvokeEmulator(region="us-east-1", account_id="123456789012") as running:
        yield running


@pytest.fixture
def dummy(emulator: LambdaInvokeEmulator) -> Dummy:
    function = Dummy()
    emulator.register("CallbackFunction", function, timeout_seconds=300)
    return function


@pytest.fixture
def lambda_client(emulator: LambdaInvokeEmulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client built the way the handlers build theirs: no endpoint argument, only the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a global endpoint the specific one must beat
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", emulator.endpoint_url)
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    session = boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY, region_name="us-east-1"
    )
    return session.client("lambda", config=Config(retries={"max_attempts": 1}))


ARN = "arn:aws:lambda:us-east-1:123456789012:function:CallbackFunction"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CallbackFunction", ("CallbackFunction", None)),
        ("CallbackFunction:$LATEST", ("CallbackFunction", "$LATEST")),
        ("123456789012:function:CallbackFunction", ("CallbackFunction", None)),
        (ARN, ("CallbackFunction", None)),
        (ARN + ":live", ("CallbackFunction", "live")),
    ],
)
def test_function_names_parse_from_names_and_arns(raw: str, expected: tuple[str, str | None]) -> None:
    assert parse_function_name(raw) == expected


def test_request_response_returns_the_handlers_json_result(lambda_client: Any, dummy: Dummy) -> None:
    answer = lambda_client.invoke(FunctionName="CallbackFunction", Payload=json.dumps({"n": 1}).encode())
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert json.loads(answer["Payload"].read()) == {"echo": {"n": 1}, "arn": ARN}


def test_an_event_invocation_by_arn_answers_202_and_runs_in_the_background(
    lambda_client: Any, emulator: LambdaInvokeEmulator, dummy: Dummy
) -> None:
    dummy.release.clear()  # the handler cannot finish until after the 202 is in hand
    answer = lambda_client.invoke(
        FunctionName=ARN, InvocationType="Event", Payload=json.dumps({"seedance_callback": {"job_id": "a" * 32}})
    )
    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    (record,) = emulator.invocations
    assert record.invocation_type == "Event"
    assert record.state in ("queued", "running")
    assert not emulator.wait_idle(0.05)
    dummy.release.set()
    assert emulator.wait_idle(10)
    (event, context) = dummy.calls[0]
    assert event == {"seedance_callback": {"job_id": "a" * 32}}
    assert context.invoked_function_arn == ARN
    assert context.function_name == "CallbackFunction"
    assert context.aws_request_id == record.request_id == answer["ResponseMetadata"]["RequestId"]
    assert 0 < context.get_remaining_time_in_millis() <= 300_000
    assert emulator.invocations[0].state == "succeeded"


def test_a_raising_handler_is_an_unhandled_function_error(lambda_client: Any, dummy: Dummy) -> None:
    answer = lambda_client.invoke(FunctionName="CallbackFunction", Payload=b'{"fail": true}')
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail"
    assert error["stackTrace"]


def test_a_failed_background_run_is_recorded(lambda_client: Any, emulator: LambdaInvokeEmulator, dummy: Dummy) -> None:
    assert lambda_client.invoke(FunctionName=ARN, InvocationType="Event", Payload=b'{"fail": 1}')["StatusCode"] == 202
    assert emulator.wait_idle(10)
    (record,) = emulator.invocations
    assert (record.state, record.error_type) == ("failed", "ValueError")


@pytest.mark.parametrize("name", ["NoSuchFunction", "arn:aws:lambda:us-east-1:123456789012:function:Nope"])
def test_an_unknown_function_is_resource_not_found(lambda_client: Any, dummy: Dummy, name: str) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as info:
        lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    assert "Function not found" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert dummy.calls == []


def test_an_unpublished_qualifier_is_resource_not_found(lambda_client: Any, dummy: Dummy) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="CallbackFunction", Qualifier="prod", Payload=b"{}")
    assert (
        lambda_client.invoke(FunctionName="CallbackFunction", Qualifier="$LATEST", Payload=b"{}")["StatusCode"] == 200
    )


def test_a_payload_that_is_not_json_is_refused(lambda_client: Any, dummy: Dummy) -> None:
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException):
        lambda_client.invoke(FunctionName="CallbackFunction", Payload=b"not json")
    assert dummy.calls == []


def test_dry_run_checks_the_function_without_running_it(lambda_client: Any, dummy: Dummy) -> None:
    assert lambda_client.invoke(FunctionName="CallbackFunction", InvocationType="DryRun")["StatusCode"] == 204
    assert dummy.calls == []


def test_an_empty_payload_arrives_as_an_empty_object(emulator: LambdaInvokeEmulator, dummy: Dummy) -> None:
    request = urllib.request.Request(
        f"{emulator.endpoint_url}/2015-03-31/functions/CallbackFunction/invocations", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["echo"] == {}


def test_wait_idle_is_true_at_once_with_nothing_in_flight(emulator: LambdaInvokeEmulator) -> None:
    assert emulator.wait_idle(0)
