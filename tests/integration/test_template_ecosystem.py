"""template.yaml around the functions: the upload trigger in both bucket modes, alarms, the dashboard, the event bus.

The template is translated with aws-sam-translator (as test_template.py does) and resolved for given parameter values
the way CloudFormation would deploy it (conditions decided, parameters substituted), so each test reads the resources
that would really exist. The local stack then runs the existing-bucket mode in moto, EventBridge rule included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedance_local.harness import LocalPipeline
from seedance_local.local_stack import LocalStack
from seedance_local.stack_template import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, find_template, resolve_template
from tests.support.stack_settings import API_KEY, FAST

TEMPLATE_PATH = find_template(Path(__file__).resolve())
EXISTING = "my-existing-uploads"
FUNCTIONS = ("SubmitFunction", "PollFunction")
READ_ONLY_VERBS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Head")
STACK = "seedance-local"  # the stack name resolve_template uses
SERVICE_DIMENSION = [{"Name": "service", "Value": STACK}]

# Alarm -> (namespace, metric, dimensions, statistic, period, evaluation periods).
ALARMS = {
    "SubmitFailureQueueAlarm": (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible",
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SubmitFailureQueue", "QueueName"]}}], "Maximum", 300, 1,
    ),
    "JobsFailedAlarm": ("SeedancePipeline", "JobsFailed", SERVICE_DIMENSION, "Sum", 300, 1),
    "JobsTimedOutAlarm": ("SeedancePipeline", "JobsTimedOut", SERVICE_DIMENSION, "Sum", 300, 1),
    "ProviderAuthErrorsAlarm": ("SeedancePipeline", "ProviderAuthErrors", SERVICE_DIMENSION, "Sum", 60, 1),
    "PollFunctionErrorsAlarm": (
        "AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": {"Ref": "PollFunction"}}], "Sum", 60, 3,
    ),
    "SubmitFunctionErrorsAlarm": (
        "AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": {"Ref": "SubmitFunction"}}], "Sum", 300, 1,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def created(cfn: dict[str, Any]) -> dict[str, Any]:
    """The stack as deployed with the defaults: it creates the input bucket."""
    return resolve_template(cfn, {"ApiKey": "k"})


@pytest.fixture(scope="module")
def existing(cfn: dict[str, Any]) -> dict[str, Any]:
    """The stack as deployed on an existing bucket."""
    return resolve_template(cfn, {"ApiKey": "k", "ExistingBucketName": EXISTING})


def _of_type(deployed: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in deployed["Resources"].items() if v["Type"] == rtype}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(deployed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = deployed["Resources"][f"{function}Role"]["Properties"]
    found: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        found.extend(_as_list(policy["PolicyDocument"]["Statement"]))
    return found


def _s3_statements(deployed: dict[str, Any], function: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _statements(deployed, function) if str(_as_list(s["Action"])[0]).startswith("s3:")}


def _environment(deployed: dict[str, Any], function: str) -> dict[str, Any]:
    variables: dict[str, Any] = deployed["Resources"][function]["Properties"]["Environment"]["Variables"]
    return variables


def _created_bucket_name(created: dict[str, Any]) -> str:
    name: str = created["Resources"]["InputBucket"]["Properties"]["BucketName"]
    return name


# --- the upload trigger: existing bucket -------------------------------------------------------------------------


def test_existing_bucket_mode_creates_no_bucket_and_no_bucket_policy(existing: dict[str, Any]) -> None:
    assert _of_type(existing, "AWS::S3::Bucket") == {}
    assert _of_type(existing, "AWS::S3::BucketPolicy") == {}
    assert not [p for p in _of_type(existing, "AWS::Lambda::Permission").values()
                if p["Properties"]["Principal"] == "s3.amazonaws.com"]  # fmt: skip


def test_existing_bucket_object_created_events_under_the_input_prefix_trigger_submit(existing: dict[str, Any]) -> None:
    (rule,) = [r for r in _of_type(existing, "AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    props = rule["Properties"]
    assert props["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [EXISTING]}, "object": {"key": [{"prefix": "uploads/"}]}},
    }
    assert props["EventBusName"] == "default"  # S3 publishes to the default bus only
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}
    (permission,) = [
        p["Properties"] for p in _of_type(existing, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["SourceArn"] == {"Fn::GetAtt": ["ExistingBucketUploadsRule", "Arn"]}
    ]  # fmt: skip
    assert permission["FunctionName"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}
    assert permission["Action"] == "lambda:InvokeFunction"


def test_existing_bucket_rule_follows_a_custom_input_prefix(cfn: dict[str, Any]) -> None:
    deployed = resolve_template(cfn, {"ApiKey": "k", "ExistingBucketName": EXISTING, "InputPrefix": "in/photos/"})
    pattern = deployed["Resources"]["ExistingBucketUploadsRule"]["Properties"]["EventPattern"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "in/photos/"}]


def test_policies_and_environment_name_the_existing_bucket(existing: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        env = _environment(existing, function)
        assert env["INPUT_BUCKET"] == env["OUTPUT_BUCKET"] == EXISTING
        s3 = _s3_statements(existing, function)
        assert s3["ReadUploadedImages"]["Resource"] == f"arn:aws:s3:::{EXISTING}/uploads/*"
        assert s3["ListUploadedImages"]["Resource"] == f"arn:aws:s3:::{EXISTING}"
    writes = _s3_statements(existing, "PollFunction")["WriteOutputs"]
    assert writes["Resource"] == f"arn:aws:s3:::{EXISTING}/videos/*"
    assert existing["Outputs"]["InputBucketName"]["Value"] == EXISTING
    assert existing["Outputs"]["OutputBucketName"]["Value"] == EXISTING


def test_existing_bucket_with_a_separate_output_bucket_writes_only_there(cfn: dict[str, Any]) -> None:
    deployed = resolve_template(cfn, {"ApiKey": "k", "ExistingBucketName": EXISTING, "OutputBucketName": "my-videos"})
    assert _environment(deployed, "PollFunction")["OUTPUT_BUCKET"] == "my-videos"
    assert _s3_statements(deployed, "PollFunction")["WriteOutputs"]["Resource"] == "arn:aws:s3:::my-videos/videos/*"
    assert _s3_statements(deployed, "PollFunction")["ReadUploadedImages"]["Resource"] == (
        f"arn:aws:s3:::{EXISTING}/uploads/*"
    )


def test_existing_bucket_setup_step_is_an_output_and_a_template_comment(
    existing: dict[str, Any], created: dict[str, Any]
) -> None:
    command = (
        f"aws s3api put-bucket-notification-configuration --bucket {EXISTING} "
        """--notification-configuration '{"EventBridgeConfiguration": {}}'"""
    )
    setup = existing["Outputs"]["ExistingBucketSetup"]
    assert setup["Value"] == command
    assert "Send notifications to Amazon EventBridge" in setup["Description"]
    assert "ExistingBucketSetup" not in created["Outputs"]
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "put-bucket-notification-configuration --bucket <ExistingBucketName>" in text
    assert """'{"EventBridgeConfiguration": {}}'""" in text


# --- the upload trigger: created bucket --------------------------------------------------------------------------


def test_created_bucket_notification_invokes_submit_for_object_created_under_the_prefix(
    created: dict[str, Any],
) -> None:
    bucket = created["Resources"]["InputBucket"]
    (config,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert config == {
        "Event": "s3:ObjectCreated:*",
        "Function": {"Fn::GetAtt": ["SubmitFunction", "Arn"]},
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}},
    }
    assert _as_list(bucket["DependsOn"]) == ["InputBucketInvokePermission"]
    permission = created["Resources"]["InputBucketInvokePermission"]["Properties"]
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Fn::GetAtt": ["SubmitFunction", "Arn"]},
        "Principal": "s3.amazonaws.com",
        "SourceAccount": DEFAULT_ACCOUNT_ID,
        "SourceArn": f"arn:aws:s3:::{_created_bucket_name(created)}",
    }
    assert "ExistingBucketUploadsRule" not in created["Resources"]
    assert "ExistingBucketUploadsPermission" not in created["Resources"]


def test_created_bucket_is_named_alike_in_bucket_policies_environment_and_outputs(created: dict[str, Any]) -> None:
    name = _created_bucket_name(created)
    assert re.fullmatch(rf"seedance-input-{DEFAULT_ACCOUNT_ID}-{DEFAULT_REGION}-[0-9a-f]{{12}}", name)
    for function in FUNCTIONS:
        env = _environment(created, function)
        assert env["INPUT_BUCKET"] == env["OUTPUT_BUCKET"] == name
        s3 = _s3_statements(created, function)
        assert s3["ReadUploadedImages"]["Resource"] == f"arn:aws:s3:::{name}/uploads/*"
        assert s3["ListUploadedImages"]["Resource"] == f"arn:aws:s3:::{name}"
    assert _s3_statements(created, "PollFunction")["WriteOutputs"]["Resource"] == f"arn:aws:s3:::{name}/videos/*"
    assert created["Resources"]["InputBucketPolicy"]["Properties"]["Bucket"] == {"Ref": "InputBucket"}
    assert created["Outputs"]["InputBucketName"]["Value"] == {"Ref": "InputBucket"}


def test_functions_carry_no_sam_event_that_would_ignore_the_bucket_mode(sam: dict[str, Any]) -> None:
    """SAM events cannot carry a Condition, so the upload trigger lives in conditional plain resources."""
    assert "Events" not in sam["Resources"]["SubmitFunction"]["Properties"]
    assert sam["Resources"]["InputBucket"]["Condition"] == "CreateBucket"
    assert sam["Resources"]["InputBucketPolicy"]["Condition"] == "CreateBucket"
    assert sam["Resources"]["InputBucketInvokePermission"]["Condition"] == "CreateBucket"
    assert sam["Resources"]["ExistingBucketUploadsRule"]["Condition"] == "UseExistingBucket"
    assert sam["Resources"]["ExistingBucketUploadsPermission"]["Condition"] == "UseExistingBucket"


def test_every_lambda_permission_names_its_source(created: dict[str, Any], existing: dict[str, Any]) -> None:
    for deployed in (created, existing):
        for logical, permission in _of_type(deployed, "AWS::Lambda::Permission").items():
            assert permission["Properties"].get("SourceArn"), logical


# --- least privilege, both modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_both_functions_list_only_the_input_prefix(
    created: dict[str, Any], existing: dict[str, Any], function: str
) -> None:
    for deployed, bucket in ((created, _created_bucket_name(created)), (existing, EXISTING)):
        listing = _s3_statements(deployed, function)["ListUploadedImages"]
        assert _as_list(listing["Action"]) == ["s3:ListBucket"]
        assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
        assert listing["Condition"] == {"StringLike": {"s3:prefix": "uploads/*"}}


@pytest.mark.parametrize("mode", ["created", "existing"])
def test_no_s3_wildcard_and_no_star_resource_on_write_actions(
    created: dict[str, Any], existing: dict[str, Any], mode: str
) -> None:
    deployed = {"created": created, "existing": existing}[mode]
    roles = _of_type(deployed, "AWS::IAM::Role")
    assert set(roles) == {f"{f}Role" for f in FUNCTIONS}
    for function in FUNCTIONS:
        for statement in _statements(deployed, function):
            actions = _as_list(statement["Action"])
            assert "s3:*" not in actions and "*" not in actions
            assert not any(a.endswith(":*") for a in actions), actions
            writes = [a for a in actions if not a.split(":", 1)[1].startswith(READ_ONLY_VERBS)]
            if writes:
                assert "*" not in _as_list(statement["Resource"]), (function, writes)


def test_job_events_go_to_the_event_bus_parameter(cfn: dict[str, Any], created: dict[str, Any]) -> None:
    deployed = resolve_template(cfn, {"ApiKey": "k", "EventBusName": "pipeline-events"})
    for function in FUNCTIONS:
        assert _environment(created, function)["EVENT_BUS_NAME"] == "default"
        assert _environment(deployed, function)["EVENT_BUS_NAME"] == "pipeline-events"
        (publish,) = [s for s in _statements(deployed, function) if s["Action"] == "events:PutEvents"]
        assert publish["Resource"] == f"arn:aws:events:{DEFAULT_REGION}:{DEFAULT_ACCOUNT_ID}:event-bus/pipeline-events"
        assert publish["Condition"] == {"StringEquals": {"events:source": "seedance.pipeline"}}


# --- alarms and notifications --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_each_alarm_watches_its_metric_above_zero_and_notifies_the_topic(created: dict[str, Any], alarm: str) -> None:
    namespace, metric, dimensions, statistic, period, evaluations = ALARMS[alarm]
    props = created["Resources"][alarm]["Properties"]
    assert created["Resources"][alarm]["Type"] == "AWS::CloudWatch::Alarm"
    assert (props["Namespace"], props["MetricName"], props["Dimensions"]) == (namespace, metric, dimensions)
    assert (props["Statistic"], props["Period"], props["EvaluationPeriods"]) == (statistic, period, evaluations)
    assert props.get("DatapointsToAlarm", evaluations) == evaluations  # every evaluated period must breach
    assert props["Threshold"] == 0
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert props["AlarmDescription"]


def test_every_alarm_in_the_template_is_one_of_the_documented_alarms(created: dict[str, Any]) -> None:
    assert set(_of_type(created, "AWS::CloudWatch::Alarm")) == set(ALARMS)


def test_pipeline_alarms_use_the_namespace_and_service_the_functions_emit(created: dict[str, Any]) -> None:
    from seedance_pipeline.observability import MetricName, metrics

    emitted = {v for k, v in vars(MetricName).items() if not k.startswith("_")}
    env = _environment(created, "SubmitFunction")
    assert metrics.namespace == env["POWERTOOLS_METRICS_NAMESPACE"] == "SeedancePipeline"
    assert env["POWERTOOLS_SERVICE_NAME"] == STACK
    # The code takes its service from that variable, as a cold start in Lambda would.
    probe = "from seedance_pipeline.observability import metrics, logger; print(metrics.service, logger.service)"
    started = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "POWERTOOLS_SERVICE_NAME": STACK, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.split() == [STACK, STACK]
    assert metrics.service == "seedance-pipeline"  # the fallback when the variable is unset (tests, the CLI)
    for alarm, (namespace, metric, *_rest) in ALARMS.items():
        if namespace == "SeedancePipeline":
            assert metric in emitted, alarm


def test_daily_token_budget_alarm_fires_at_80_percent_only_when_a_budget_is_set(
    cfn: dict[str, Any], created: dict[str, Any]
) -> None:
    from seedance_pipeline.observability import MetricName

    assert "DailyTokenBudgetAlarm" not in created["Resources"]  # no budget (the default): no alarm
    budgeted = resolve_template(cfn, {"ApiKey": "k", "DailyTokenBudget": "2000000"})
    alarm = budgeted["Resources"]["DailyTokenBudgetAlarm"]
    props = alarm["Properties"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    assert (props["Namespace"], props["MetricName"], props["Dimensions"]) == (
        "SeedancePipeline", MetricName.DAILY_TOKEN_BUDGET_USED_PERCENT, SERVICE_DIMENSION,
    )  # fmt: skip
    assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == (
        "Maximum", 80, "GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert _environment(budgeted, "PollFunction")["DAILY_TOKEN_BUDGET"] == "2000000"


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(created: dict[str, Any]) -> None:
    topic = created["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}
    key = created["Resources"]["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    alarm_arns = f"arn:aws:cloudwatch:{DEFAULT_REGION}:{DEFAULT_ACCOUNT_ID}:alarm:*"
    (grant,) = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert grant["Condition"] == {
        "StringEquals": {"aws:SourceAccount": DEFAULT_ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": alarm_arns},
    }  # fmt: skip
    policy = created["Resources"]["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    (publish,) = policy["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"]["ArnLike"] == {"aws:SourceArn": alarm_arns}


def test_email_subscription_exists_only_when_alarm_email_is_set(cfn: dict[str, Any], created: dict[str, Any]) -> None:
    assert _of_type(created, "AWS::SNS::Subscription") == {}
    assert "AlarmTopic" in created["Resources"]
    deployed = resolve_template(cfn, {"ApiKey": "k", "AlarmEmail": "ops@example.com"})
    (subscription,) = _of_type(deployed, "AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": "ops@example.com",
    }  # fmt: skip


# --- dashboard -----------------------------------------------------------------------------------------------------


def _dashboard(deployed: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body with the resource tokens CloudFormation fills in replaced by stand-in names."""
    body = deployed["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    tokens = set(re.findall(r"\$\{([^}]+)\}", body))
    assert tokens <= {"SubmitFunction", "PollFunction", "SubmitFailureQueue.QueueName"} | {
        f"{alarm}.Arn" for alarm in ALARMS
    }
    for token in tokens:
        body = body.replace("${" + token + "}", f"stand-in-{token.replace('.', '-')}")
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_dashboard_body_is_valid_json_after_substitution(created: dict[str, Any]) -> None:
    board = _dashboard(created)
    assert board["widgets"]
    for widget in board["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == DEFAULT_REGION
    (alarms,) = [w for w in board["widgets"] if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == len(ALARMS)


def _dashboard_rows(deployed: dict[str, Any]) -> tuple[list[list[Any]], list[str]]:
    """(metric rows, SEARCH/metric-math expressions) of the dashboard's metric widgets."""
    rows: list[list[Any]] = []
    expressions: list[str] = []
    for widget in _dashboard(deployed)["widgets"]:
        if widget["type"] != "metric":
            continue
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):
                expressions.append(row[0]["expression"])
            else:
                rows.append(row)
    return rows, expressions


def test_dashboard_shows_the_pipeline_lambda_and_queue_metrics(created: dict[str, Any]) -> None:
    from seedance_pipeline.observability import MetricName

    rows, expressions = _dashboard_rows(created)
    shown = {(row[0], row[1], row[3], row[4].get("stat", "")) for row in rows}
    pipeline = {metric for namespace, metric, _value, _stat in shown if namespace == "SeedancePipeline"}
    for metric in ("JobsSubmitted", "JobsSucceeded", "JobsFailed", "JobsRejected", "JobsTimedOut",
                   "GenerationSeconds", "ProviderAuthErrors", "JobsInFlight", "StatusChecks"):  # fmt: skip
        assert metric in pipeline
    assert pipeline <= {v for k, v in vars(MetricName).items() if not k.startswith("_")}
    assert all(row[2:4] == ["service", STACK] for row in rows if row[0] == "SeedancePipeline")
    assert ("SeedancePipeline", "GenerationSeconds", STACK, "p50") in shown
    assert ("SeedancePipeline", "GenerationSeconds", STACK, "p90") in shown
    assert any('MetricName="ProviderErrors"' in e for e in expressions)
    for function in FUNCTIONS:
        lambda_metrics = {m for ns, m, value, _ in shown if ns == "AWS/Lambda" and value == f"stand-in-{function}"}
        assert lambda_metrics == {"Errors", "Duration"}
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "stand-in-SubmitFailureQueue-QueueName", "") in shown


def test_dashboard_and_alarms_query_the_dimensions_the_code_publishes(
    created: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph or alarm over a dimension set the code never publishes stays empty: compare with the real EMF."""
    from seedance_pipeline.observability import count_provider_error, metrics

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "seedance-pipeline")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    capsys.readouterr()
    count_provider_error("ServerOverloaded")
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert [m["Name"] for m in directive["Metrics"]] == ["ProviderErrors"]
    by_code = sorted(directive["Dimensions"][0])
    assert by_code == ["error_code", "service"]

    # Every other pipeline metric carries the service dimension alone (Metrics(service=...), no extra dimensions).
    assert metrics.service == "seedance-pipeline" and metrics.default_dimensions == {}
    rows, expressions = _dashboard_rows(created)
    assert not [row for row in rows if row[:2] == ["SeedancePipeline", "ProviderErrors"]]
    (search,) = [e for e in expressions if 'MetricName="ProviderErrors"' in e]
    schema = re.search(r"\{SeedancePipeline,([^}]+)\}", search)
    assert schema is not None and sorted(schema.group(1).split(",")) == by_code
    for alarm, (namespace, metric, dimensions, *_rest) in ALARMS.items():
        if namespace == "SeedancePipeline":
            assert metric != "ProviderErrors" and dimensions == SERVICE_DIMENSION, alarm


def test_alarm_topic_and_dashboard_are_outputs(created: dict[str, Any]) -> None:
    outputs = created["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    assert outputs["DashboardUrl"]["Value"]["Fn::Sub"].endswith("#dashboards/dashboard/${Dashboard}")


def test_every_checkov_skip_carries_its_reason(sam: dict[str, Any]) -> None:
    for logical, resource in sam["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), logical
            assert len(skip.get("comment", "")) > 40, (logical, skip["id"])


# --- the local stack in existing-bucket mode -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def existing_stack() -> Iterator[LocalStack]:
    with LocalStack.start(
        api_key=API_KEY, parameters={"ExistingBucketName": EXISTING}, template_path=TEMPLATE_PATH
    ) as local:
        yield local


@pytest.fixture(scope="module")
def rule_queue(existing_stack: LocalStack) -> str:
    """An SQS queue as a second target of the uploads rule, standing in for SubmitFunction's asynchronous invoke."""
    sqs = existing_stack.client("sqs")
    url: str = sqs.create_queue(QueueName="existing-bucket-uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    existing_stack.client("events").put_targets(
        Rule=existing_stack.resources["ExistingBucketUploadsRule"], Targets=[{"Id": "capture", "Arn": arn}]
    )
    return url


def _drain(stack: LocalStack, queue_url: str) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_local_stack_starts_in_existing_bucket_mode(existing_stack: LocalStack) -> None:
    assert existing_stack.bucket == existing_stack.output_bucket == EXISTING
    assert "InputBucket" not in existing_stack.resources
    assert "InputBucketPolicy" not in existing_stack.resources
    assert existing_stack.deviations == []  # no bucket policy, so no TLS-only statement to leave out
    existing_stack.client("s3").head_bucket(Bucket=EXISTING)
    env = existing_stack.environment()
    assert env["INPUT_BUCKET"] == env["OUTPUT_BUCKET"] == EXISTING
    rule = existing_stack.client("events").describe_rule(Name=existing_stack.resources["ExistingBucketUploadsRule"])
    assert json.loads(rule["EventPattern"])["detail"]["bucket"]["name"] == [EXISTING]
    topic = existing_stack.resources["AlarmTopic"]
    assert existing_stack.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["TopicArn"] == topic


def test_only_uploads_under_the_input_prefix_of_the_existing_bucket_match_the_rule(
    existing_stack: LocalStack, rule_queue: str
) -> None:
    _drain(existing_stack, rule_queue)
    s3 = existing_stack.client("s3")
    for key in ("uploads/cats/tom.png", "videos/cats/tom.mp4", "elsewhere/tom.png", "uploadsX/tom.png"):
        s3.put_object(Bucket=EXISTING, Key=key, Body=b"bytes")
    received = _drain(existing_stack, rule_queue)
    assert [(e["detail-type"], e["detail"]["object"]["key"]) for e in received] == [
        ("Object Created", "uploads/cats/tom.png")
    ]


def test_an_upload_to_the_existing_bucket_becomes_a_video_through_eventbridge(
    existing_stack: LocalStack, rule_queue: str, sim: Any
) -> None:
    from tests.support.images import image_bytes

    _drain(existing_stack, rule_queue)
    existing_stack.client("s3").put_object(Bucket=EXISTING, Key="uploads/eb/kitten.jpg", Body=image_bytes())
    (event,) = _drain(existing_stack, rule_queue)
    with LocalPipeline(existing_stack, api_base_url=sim.base_url, **FAST) as pipeline:
        pipeline.submit(event)
        assert list(pipeline.job_ids) == ["uploads/eb/kitten.jpg"]
        (job,) = pipeline.run_until_terminal(timeout=120).values()
        assert job.status.value == "SUCCEEDED", job
        assert job.source_bucket == job.outputs.bucket == EXISTING
        assert job.outputs.video_key == f"videos/eb/kitten.jpg.{job.job_id[:12]}.mp4"
        head = existing_stack.client("s3").head_object(Bucket=EXISTING, Key=job.outputs.video_key)
        assert head["ContentLength"] > 0
