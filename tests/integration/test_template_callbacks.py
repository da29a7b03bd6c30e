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
    "CallbackSelfInvokePolicy",
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
    assert props["Timeout"] == 300 and props["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert props["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    skips = {s["id"]: s["comment"] for s in function["Metadata"]["checkov"]["skip"]}
    assert "SigV4" in skips["CKV_AWS_258"] and "token" in skips["CKV_AWS_258"]
    translated = cfn["Resources"]["CallbackFunction"]["Properties"]
    assert translated["Runtime"] == "python3.13" and translated["Architectures"] == ["arm64"]


def test_the_callback_function_verifies_tokens_but_never_names_its_own_url(cfn: dict[str, Any]) -> None:
    variables = cfn["Resources"]["CallbackFunction"]["Properties"]["Environment"]["Variables"]
    poll = cfn["Resources"]["PollFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CALLBACK_SIGNING_SECRET_ID"] == {"Ref": "CallbackSigningKey"}
    assert "CALLBACK_URL" not in variables
    assert set(poll) - set(variables) == {"CALLBACK_URL", "CALLBACK_FIELD"}
    assert "CallbackFunctionUrl" not in json.dumps(variables)


def test_the_callback_function_may_do_what_a_delivery_needs_and_nothing_more(cfn: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for s in _statements(cfn, "CallbackFunctionRole")}
    assert set(statements) == {
        "WriteOutputs",
        "ReplaceOutputs",
        "ListOutputs",
        "JobsTable",
        "FindInFlightSlots",
        "ReadApiKey",
        "ReadCallbackSigningKey",
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
    assert statements["ReadCallbackSigningKey"]["Resource"] == {"Ref": "CallbackSigningKey"}
    role = cfn["Resources"]["CallbackFunctionRole"]["Properties"]
    assert sorted(role["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ]


def test_the_hand_off_may_invoke_only_the_callback_function_itself(sam: dict[str, Any]) -> None:
    policy = sam["Resources"]["CallbackSelfInvokePolicy"]
    assert policy["Type"] == "AWS::IAM::RolePolicy"
    assert policy["Properties"]["RoleName"] == {"Ref": "CallbackFunctionRole"}
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": ["CallbackFunction", "Arn"]}


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
