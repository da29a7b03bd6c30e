"""template.yaml, provider callbacks: everything exists only with CallbackMode on, and each policy is the least."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

CALLBACK_RESOURCES = (
    "CallbackSigningKey",
    "CallbackLogGroup",
    "CallbackFunction",
    "CallbackWorkerLogGroup",
    "CallbackWorkerFunction",
    "CallbackSigningKeyReadPolicy",
)


def _statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in cfn["Resources"][role]["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        found.extend([statements] if isinstance(statements, dict) else statements)
    # A statement under a condition (Fn::If [cond, statement, AWS::NoValue]) counts as the statement it may be.
    return [
        branch
        for statement in found
        for branch in (statement["Fn::If"][1:] if "Fn::If" in statement else [statement])
        if branch != {"Ref": "AWS::NoValue"}
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_callbacks_are_off_by_default_and_the_field_is_a_plain_name(sam: dict[str, Any]) -> None:
    mode, field = sam["Parameters"]["CallbackMode"], sam["Parameters"]["CallbackField"]
    assert mode["Default"] == "off" and mode["AllowedValues"] == ["off", "on"]
    assert field["Default"] == "" and field["AllowedPattern"].startswith("^$|")
    assert mode["Description"] and field["Description"]
    assert sam["Conditions"]["CallbacksOn"] == {"Fn::Equals": [{"Ref": "CallbackMode"}, "on"]}


def test_every_callback_resource_and_output_exists_only_with_callbacks_on(sam: dict[str, Any], cfn: dict[str, Any]):
    for name in CALLBACK_RESOURCES:
        assert sam["Resources"][name]["Condition"] == "CallbacksOn", name
    url = cfn["Resources"]["CallbackFunctionUrl"]
    assert url["Type"] == "AWS::Lambda::Url" and url["Condition"] == "CallbacksOn"
    assert url["Properties"]["AuthType"] == "NONE"
    assert cfn["Outputs"]["CallbackUrl"]["Condition"] == "CallbacksOn"
    assert cfn["Outputs"]["CallbackUrl"]["Value"] == {"Fn::GetAtt": ["CallbackFunctionUrl", "FunctionUrl"]}
    public = [
        r
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"].get("Principal") == "*"
    ]
    assert public and all(r["Condition"] == "CallbacksOn" for r in public)


def test_the_signing_key_is_generated_and_its_rotation_skip_says_why(sam: dict[str, Any]) -> None:
    key = sam["Resources"]["CallbackSigningKey"]
    assert key["Type"] == "AWS::SecretsManager::Secret"
    assert key["Properties"]["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    skips = {s["id"]: s["comment"] for s in key["Metadata"]["checkov"]["skip"]}
    assert "in flight" in skips["CKV2_AWS_57"] and "polling" in skips["CKV2_AWS_57"]


def test_the_callback_function_is_a_public_url_authenticated_by_its_tokens(sam: dict[str, Any], cfn: dict[str, Any]):
    function = sam["Resources"]["CallbackFunction"]
    props = function["Properties"]
    assert props["CodeUri"] == "functions/callback" and props["Handler"] == "callback_handler.lambda_handler"
    assert props["Timeout"] <= 30 and props["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert "EventInvokeConfig" not in props  # invoked by its URL only
    skips = {s["id"]: s["comment"] for s in function["Metadata"]["checkov"]["skip"]}
    assert "SigV4" in skips["CKV_AWS_258"] and "token" in skips["CKV_AWS_258"]
    assert "CKV_AWS_115" not in skips  # its concurrency is reserved
    translated = cfn["Resources"]["CallbackFunction"]["Properties"]
    assert translated["Runtime"] == "python3.13" and translated["Architectures"] == ["arm64"]


def test_the_worker_is_invoked_only_asynchronously_by_the_intake(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    props = sam["Resources"]["CallbackWorkerFunction"]["Properties"]
    assert props["CodeUri"] == "functions/callback_worker"
    assert props["Handler"] == "callback_worker_handler.lambda_handler"
    assert props["Timeout"] == 300 and props["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    assert "FunctionUrlConfig" not in props
    assert not [
        r
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission" and "CallbackWorker" in json.dumps(r["Properties"]["FunctionName"])
    ]


@pytest.mark.parametrize(
    ("function", "parameter", "condition"),
    [
        ("CallbackFunction", "CallbackConcurrency", "ReserveCallbackConcurrency"),
        ("CallbackWorkerFunction", "CallbackWorkerConcurrency", "ReserveCallbackWorkerConcurrency"),
    ],
)
def test_both_callback_functions_reserve_a_concurrency_a_low_quota_account_can_give(
    sam: dict[str, Any], cfn: dict[str, Any], function: str, parameter: str, condition: str
) -> None:
    reserved = cfn["Resources"][function]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {"Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}
    assert sam["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
    declared = sam["Parameters"][parameter]
    assert declared["Type"] == "Number" and 1 <= declared["Default"] <= 5 and declared["MinValue"] == 0
    assert "0 - no reservation" in declared["Description"]  # for a quota that leaves no room to reserve
    groups = sam["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any(parameter in group["Parameters"] for group in groups)


def test_the_intake_verifies_tokens_and_names_its_worker_but_never_its_own_url(cfn: dict[str, Any]) -> None:
    variables = cfn["Resources"]["CallbackFunction"]["Properties"]["Environment"]["Variables"]
    poll = cfn["Resources"]["PollFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CALLBACK_SIGNING_SECRET_ID"] == {"Ref": "CallbackSigningKey"}
    assert variables["CALLBACK_WORKER_FUNCTION"] == {"Ref": "CallbackWorkerFunction"}
    assert "CALLBACK_URL" not in variables
    assert set(poll) - set(variables) == {"CALLBACK_URL", "CALLBACK_FIELD"}
    assert "CallbackFunctionUrl" not in json.dumps(variables)
    worker = cfn["Resources"]["CallbackWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert not {"CALLBACK_SIGNING_SECRET_ID", "CALLBACK_URL", "CALLBACK_WORKER_FUNCTION"} & set(worker)


def _actions(statements: dict[str, dict[str, Any]]) -> set[str]:
    return {action for statement in statements.values() for action in _as_list(statement["Action"])}


def _least(statements: dict[str, dict[str, Any]]) -> None:
    for statement in statements.values():
        actions = _as_list(statement["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions)
        assert "*" not in _as_list(statement["Resource"])


def test_the_public_intake_may_read_one_job_read_the_signing_key_and_invoke_the_worker_only(
    cfn: dict[str, Any],
) -> None:
    statements = {s["Sid"]: s for s in _statements(cfn, "CallbackFunctionRole")}
    _least(statements)
    assert _actions(statements) == {"dynamodb:GetItem", "secretsmanager:GetSecretValue", "lambda:InvokeFunction"}
    assert statements["ReadJob"]["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
    assert statements["ReadCallbackSigningKey"]["Resource"] == {"Ref": "CallbackSigningKey"}
    assert statements["HandOff"]["Resource"] == {"Fn::GetAtt": ["CallbackWorkerFunction", "Arn"]}
    role = cfn["Resources"]["CallbackFunctionRole"]["Properties"]
    assert sorted(role["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ]
    # No other policy is attached to the intake's role (the old self-invoke policy is gone).
    attached = [
        r
        for r in cfn["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy")
        and {"Ref": "CallbackFunctionRole"} in [r["Properties"].get("RoleName"), *r["Properties"].get("Roles", [])]
    ]
    assert attached == []


def test_the_worker_may_do_what_a_delivery_needs_and_nothing_more(cfn: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for s in _statements(cfn, "CallbackWorkerFunctionRole")}
    _least(statements)
    assert set(statements) == {
        # A delivery without a sequencer asks whether its upload is still the key's current object (HeadObject).
        "CheckUploadIsCurrent",
        "ListUploads",
        "WriteOutputs",
        "ReplaceOutputs",
        "ListOutputs",
        "JobsTable",
        "FindInFlightSlots",
        "ReadApiKey",
        "PublishJobEvents",
        # Only with a KMS-encrypted output bucket (OutputBucketKmsKeyArn, or BucketKmsKeyArn on the input bucket).
        "EncryptOutputs",
    }
    for statement in statements.values():
        actions = _as_list(statement["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions)
        assert "*" not in _as_list(statement["Resource"])
    # BatchGetItem: the job that ends a batch writes its report, reading the batch's jobs.
    assert sorted(statements["JobsTable"]["Action"]) == [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert statements["JobsTable"]["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
    assert statements["FindInFlightSlots"]["Resource"] == {"Fn::Sub": "${JobsTable.Arn}/index/slot-holders"}
    # Of the uploads, it may only look at the current object's head: never list them beyond the prefix, never write.
    assert statements["CheckUploadIsCurrent"]["Action"] == "s3:GetObject"
    assert "${InputPrefix}*" in json.dumps(statements["CheckUploadIsCurrent"]["Resource"])
    assert statements["ListUploads"]["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${InputPrefix}*"}}}
    # It never sees an anonymous request, and never needs the signing key or to invoke anything.
    assert not {"lambda:InvokeFunction"} & _actions(statements)
    assert "CallbackSigningKey" not in json.dumps(statements)


@pytest.mark.parametrize("function", ["SubmitFunction", "PollFunction"])
def test_submit_and_poll_read_the_signing_key_only_when_callbacks_are_on(sam: dict[str, Any], function: str) -> None:
    policy = sam["Resources"]["CallbackSigningKeyReadPolicy"]
    assert policy["Type"] == "AWS::IAM::Policy" and policy["Condition"] == "CallbacksOn"
    assert {"Ref": f"{function}Role"} in policy["Properties"]["Roles"]
    assert len(policy["Properties"]["Roles"]) == 2
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == {"Ref": "CallbackSigningKey"}


def test_the_dashboard_graphs_callbacks_by_the_dimensions_the_code_publishes(
    sam: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from seedance_pipeline.observability import MetricName, count_callback

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "seedance-pipeline")  # as template.yaml sets it
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    capsys.readouterr()
    count_callback("refused")
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert [m["Name"] for m in directive["Metrics"]] == [MetricName.CALLBACKS_RECEIVED] and emf["outcome"] == "refused"
    body = sam["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    match = re.search(r"\{SeedancePipeline,([^}]+)\} MetricName=\\\"CallbacksReceived\\\"", body)
    assert match is not None and sorted(match.group(1).split(",")) == sorted(directive["Dimensions"][0])
