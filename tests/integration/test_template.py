"""template.yaml: the parameters the docs' Configuration page documents, least privilege, and the schema moto builds."""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from seedance_local.local_stack import LocalStack, LocalStackError
from seedance_local.stack_template import find_template, parameter_defaults, resolve_parameters, resolve_template
from seedance_pipeline.models import DUE_INDEX_ATTRIBUTES, WRITER_GRACE_SECONDS

TEMPLATE_PATH = find_template(Path(__file__).resolve())
REPO = TEMPLATE_PATH.parent

# The parameters docs/configuration.md promises users; renaming one breaks every samconfig.toml.
DOCUMENTED_PARAMETERS = [
    "ProviderApi",
    "ApiBaseUrl",
    "ApiKey",
    "ApiKeySecretArn",
    "Model",
    "ExtraModels",
    "ServiceTier",
    "DefaultPrompt",
    "Resolution",
    "Ratio",
    "Duration",
    "Watermark",
    "CameraFixed",
    "ReturnLastFrame",
    "GenerateAudio",
    "InputPrefix",
    "OutputPrefix",
    "MaxInFlight",
    "MaxJobAgeMinutes",
    "AllowPrivateDownloads",
    "ImageDelivery",
    "JobRetentionDays",
    "PollConcurrency",
    "DueIndexShards",
    "LogLevel",
    "ExistingBucketName",
    "OutputBucketName",
    "BucketKmsKeyArn",
    "OutputBucketKmsKeyArn",
    "AlarmEmail",
    "EventBusName",
    "CallbackMode",
    "CallbackField",
]

# Environment variable -> the parameter it carries (None: a constant or a resource name).
ENVIRONMENT = {
    "JOBS_TABLE_NAME": None,
    "INPUT_BUCKET": None,
    "OUTPUT_BUCKET": None,
    "OUTPUT_KMS_KEY_ARN": None,
    "PROVIDER_API": "ProviderApi",
    "API_BASE_URL": "ApiBaseUrl",
    "SERVICE_TIER": "ServiceTier",
    "API_KEY_SECRET_ID": None,
    "MODEL": "Model",
    "EXTRA_MODELS": "ExtraModels",
    "DEFAULT_PROMPT": "DefaultPrompt",
    "RESOLUTION": "Resolution",
    "RATIO": "Ratio",
    "DURATION": "Duration",
    "WATERMARK": "Watermark",
    "CAMERA_FIXED": "CameraFixed",
    "RETURN_LAST_FRAME": "ReturnLastFrame",
    "GENERATE_AUDIO": "GenerateAudio",
    "RESUBMIT_ON_OUTPUT_MODERATION": "ResubmitOnOutputModeration",
    "INPUT_PREFIX": "InputPrefix",
    "OUTPUT_PREFIX": "OutputPrefix",
    "MAX_IN_FLIGHT": "MaxInFlight",
    "MAX_JOB_AGE_MINUTES": "MaxJobAgeMinutes",
    "ALLOW_PRIVATE_DOWNLOADS": "AllowPrivateDownloads",
    "IMAGE_DELIVERY": "ImageDelivery",
    "JOB_RETENTION_DAYS": "JobRetentionDays",
    "POLL_CONCURRENCY": "PollConcurrency",
    "DUE_INDEX_SHARDS": "DueIndexShards",
    "DAILY_TOKEN_BUDGET": "DailyTokenBudget",
    "EVENT_BUS_NAME": "EventBusName",
    "POWERTOOLS_SERVICE_NAME": None,
    "POWERTOOLS_METRICS_NAMESPACE": None,
    "POWERTOOLS_LOG_LEVEL": "LogLevel",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": None,
    "MALLOC_ARENA_MAX": None,
    # Submit and Poll only (CallbackFunction cannot name its own URL): empty unless CallbackMode is on.
    "CALLBACK_URL": None,
    "CALLBACK_SIGNING_SECRET_ID": None,
    "CALLBACK_FIELD": "CallbackField",
}

FUNCTIONS = ("SubmitFunction", "PollFunction")
READ_ONLY_VERBS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Head")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(api_key="template-test-key", template_path=TEMPLATE_PATH) as local:
        yield local


def _statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = cfn["Resources"][f"{function}Role"]["Properties"]
    found: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
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


def _sub_text(value: Any) -> str:
    """The template string of an Fn::Sub (short or long form)."""
    arg = value["Fn::Sub"]
    return arg if isinstance(arg, str) else arg[0]


# --- translation and parameters ------------------------------------------------------------------------------------


def test_template_translates_to_cloudformation_with_both_functions(cfn: dict[str, Any]) -> None:
    resources = cfn["Resources"]
    for name in FUNCTIONS:
        props = resources[name]["Properties"]
        assert resources[name]["Type"] == "AWS::Lambda::Function"
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        (layer,) = props["Layers"]
        assert resources[layer["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
    assert resources["SubmitFunction"]["Properties"]["Handler"] == "submit_handler.lambda_handler"
    assert resources["PollFunction"]["Properties"]["Handler"] == "poll_handler.lambda_handler"
    assert "Transform" not in cfn


def test_every_design_parameter_exists_with_a_description(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    missing = [name for name in DOCUMENTED_PARAMETERS if name not in params]
    assert not missing
    assert all(params[name].get("Description") for name in params)


def test_parameter_defaults_follow_the_design(sam: dict[str, Any]) -> None:
    defaults = parameter_defaults(sam)
    assert defaults["InputPrefix"] == "uploads/"
    assert defaults["OutputPrefix"] == "videos/"
    assert defaults["MaxJobAgeMinutes"] == "120"
    assert defaults["AllowPrivateDownloads"] == "false"
    assert defaults["Model"] == "doubao-seedance-1-0-pro-250528"
    assert defaults["Resolution"] == "720p"
    assert defaults["Ratio"] == "adaptive"
    assert defaults["Duration"] == "5"
    assert defaults["ImageDelivery"] == "presigned-url"
    assert defaults["MaxInFlight"] == "10"
    assert defaults["JobRetentionDays"] == "30"
    assert defaults["PollConcurrency"] == "32"
    assert defaults["DueIndexShards"] == "4"
    assert defaults["LogLevel"] == "INFO"
    assert defaults["ApiKey"] == ""
    assert defaults["ApiKeySecretArn"] == ""
    assert defaults["ExistingBucketName"] == ""
    assert defaults["AlarmEmail"] == ""
    assert defaults["EventBusName"] == "default"
    assert sam["Parameters"]["ApiKey"]["NoEcho"] is True


def test_enumerable_parameters_list_exactly_the_provider_values(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    # Models are checked at run time against the catalogue (built in + ExtraModels), not by the template.
    assert "AllowedValues" not in params["Model"]
    assert re.fullmatch(params["Model"]["AllowedPattern"], "seedance-1-0-pro-fast-251015")
    assert params["Resolution"]["AllowedValues"] == ["480p", "720p", "1080p"]
    assert params["Ratio"]["AllowedValues"] == [
        "21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21", "keep_ratio", "adaptive",
    ]  # fmt: skip
    assert params["Duration"]["AllowedValues"] == ["5", "10"]
    assert params["ImageDelivery"]["AllowedValues"] == ["presigned-url", "data-url"]
    for name in ("Watermark", "CameraFixed", "ReturnLastFrame", "GenerateAudio", "AllowPrivateDownloads"):
        assert params[name]["AllowedValues"] == ["true", "false"]


def test_parameters_are_checked_like_cloudformation_checks_them(sam: dict[str, Any]) -> None:
    with pytest.raises(LocalStackError, match=r"Resolution='4k' is not one of 480p, 720p, 1080p"):
        resolve_parameters(sam, {"ApiKey": "k", "Resolution": "4k"})
    with pytest.raises(LocalStackError, match="unknown parameter 'Resolutoin'"):
        resolve_parameters(sam, {"ApiKey": "k", "Resolutoin": "720p"})
    with pytest.raises(LocalStackError, match="MaxInFlight=0 is below 1"):
        resolve_parameters(sam, {"ApiKey": "k", "MaxInFlight": 0})
    with pytest.raises(LocalStackError, match="InputPrefix=''"):
        resolve_parameters(sam, {"ApiKey": "k", "InputPrefix": ""})


def test_template_rules_demand_a_key_and_distinct_prefixes(sam: dict[str, Any]) -> None:
    with pytest.raises(LocalStackError, match="rule ApiKeyProvided"):
        resolve_parameters(sam, {})
    with pytest.raises(LocalStackError, match="rule DistinctPrefixes"):
        resolve_parameters(sam, {"ApiKey": "k", "InputPrefix": "same/", "OutputPrefix": "same/"})
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:seedance-AbCdEf"
    gateway = {"ApiBaseUrl": "https://gateway.test"}
    assert resolve_parameters(sam, {"ApiKeySecretArn": arn, **gateway})["ApiKeySecretArn"] == arn


def test_a_unified_stack_needs_a_real_base_url_and_an_ark_stack_defaults_it(sam: dict[str, Any]) -> None:
    assert sam["Parameters"]["ApiBaseUrl"]["Default"] == ""
    with pytest.raises(LocalStackError, match="rule ApiBaseUrlProvided: Set ApiBaseUrl"):
        resolve_parameters(sam, {"ApiKey": "k"})
    with pytest.raises(LocalStackError, match="rule ApiBaseUrlProvided"):
        resolve_parameters(sam, {"ApiKey": "k", "ProviderApi": "unified"})
    assert resolve_parameters(sam, {"ApiKey": "k", "ProviderApi": "ark"})["ApiBaseUrl"] == ""
    assert resolve_parameters(sam, {"ApiKey": "k", "ApiBaseUrl": "https://gw.test"})["ProviderApi"] == "unified"
    with pytest.raises(LocalStackError, match="ProviderApi"):
        resolve_parameters(sam, {"ApiKey": "k", "ProviderApi": "native"})
    with pytest.raises(LocalStackError, match="ServiceTier"):
        resolve_parameters(sam, {"ApiKey": "k", "ProviderApi": "ark", "ServiceTier": "cheap"})


@pytest.mark.parametrize(
    ("input_prefix", "output_prefix", "nest"),
    [
        ("media/uploads/", "media/", True),
        ("media/", "media/videos/", True),
        ("a/b/c/d/e/", "a/b/c/d/", True),
        ("media/in/", "media/out/", False),
        ("uploads/", "videos/", False),
        ("up/", "uploads/", False),
        ("a/b/c/d/e/", "a/b/c/d/f/", False),
    ],
)
def test_prefixes_that_contain_each_other_stop_the_deployment(
    cfn: dict[str, Any], input_prefix: str, output_prefix: str, nest: bool
) -> None:
    parameters = {"ApiKey": "k", "InputPrefix": input_prefix, "OutputPrefix": output_prefix}
    resources = resolve_template(cfn, parameters)["Resources"]
    assert ("InputPrefixAndOutputPrefixMustNotContainEachOther" in resources) is nest
    if nest:
        refusal = resources["InputPrefixAndOutputPrefixMustNotContainEachOther"]
        assert refusal["Type"] == "AWS::CloudFormation::WaitCondition"  # never signalled: fails, stack rolls back


def test_prefixes_deeper_than_the_nesting_check_are_refused_by_their_pattern(sam: dict[str, Any]) -> None:
    with pytest.raises(LocalStackError, match="InputPrefix='a/b/c/d/e/f/'"):
        resolve_parameters(sam, {"ApiKey": "k", "InputPrefix": "a/b/c/d/e/f/"})


# --- environment ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_both_functions_get_every_environment_variable(cfn: dict[str, Any], function: str) -> None:
    variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert sorted(ENVIRONMENT) == sorted(variables)
    for name, parameter in ENVIRONMENT.items():
        if parameter is not None:
            assert variables[name] == {"Ref": parameter}, name
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}  # per-stack metrics and alarms
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "SeedancePipeline"
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    # Few glibc arenas: a poll run's threads reuse freed transfer buffers (bench figure 8).
    assert variables["MALLOC_ARENA_MAX"] == "2"
    assert variables["JOBS_TABLE_NAME"] == {"Ref": "JobsTable"}
    assert variables["API_KEY_SECRET_ID"] == {
        "Fn::If": ["CreateApiKeySecret", {"Ref": "ApiKeySecret"}, {"Ref": "ApiKeySecretArn"}]
    }
    assert variables["CALLBACK_URL"] == {
        "Fn::If": ["CallbacksOn", {"Fn::GetAtt": ["CallbackFunctionUrl", "FunctionUrl"]}, ""]
    }
    assert variables["CALLBACK_SIGNING_SECRET_ID"] == {"Fn::If": ["CallbacksOn", {"Ref": "CallbackSigningKey"}, ""]}


def _secret_values_in(node: Any, secret_parameters: set[str]) -> list[str]:
    """Every way a CloudFormation value can carry a secret parameter's text or a secret's value: a Ref, a Sub
    placeholder (`${ApiKey}`, nested in Join/If/Select alike), a dynamic reference resolving a secret."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in secret_parameters:
                found.append(f"Ref {value}")
            found.extend(_secret_values_in(value, secret_parameters))
    elif isinstance(node, list):
        for item in node:
            found.extend(_secret_values_in(item, secret_parameters))
    elif isinstance(node, str):
        found.extend(f"${{{name}}}" for name in secret_parameters if f"${{{name}}}" in node)
        found.extend(ref for ref in ("{{resolve:secretsmanager", "{{resolve:ssm-secure") if ref in node)
    return found


def test_the_api_key_itself_never_reaches_an_environment_variable(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    # The template as written: the SAM transform resolves a Ref to a parameter into its default, hiding it.
    secret_parameters = {name for name, p in sam["Parameters"].items() if str(p.get("NoEcho")).lower() == "true"}
    assert "ApiKey" in secret_parameters
    environments = {"Globals.Function": sam.get("Globals", {}).get("Function", {}).get("Environment", {})}
    for name, resource in sam["Resources"].items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            environments[name] = resource["Properties"].get("Environment", {})
    functions = {name for name, resource in cfn["Resources"].items() if resource["Type"] == "AWS::Lambda::Function"}
    assert {*FUNCTIONS, "CallbackFunction"} <= functions <= set(environments)
    for name, environment in environments.items():
        variables = environment.get("Variables", {})
        leaks = {
            var: found for var, value in variables.items() if (found := _secret_values_in(value, secret_parameters))
        }
        assert not leaks, f"{name} puts a secret in its environment: {leaks}"


def test_input_bucket_name_is_one_expression_everywhere(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """The functions name the bucket by a deterministic string (no !Ref: it would be a circular dependency), or by
    ExistingBucketName when the stack creates no bucket."""
    bucket_name = cfn["Resources"]["InputBucket"]["Properties"]["BucketName"]
    name_text, name_vars = bucket_name["Fn::Sub"]
    input_bucket = {"Fn::If": ["CreateBucket", bucket_name, {"Ref": "ExistingBucketName"}]}
    for function in FUNCTIONS:
        variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["INPUT_BUCKET"] == input_bucket
        assert variables["OUTPUT_BUCKET"]["Fn::If"] == [
            "UseInputBucketForOutput", input_bucket, {"Ref": "OutputBucketName"},
        ]  # fmt: skip
        s3_statements = [s for s in _statements(cfn, function) if ":s3:::" in json.dumps(s["Resource"])]
        assert s3_statements
        for statement in s3_statements:
            text, variables_ = statement["Resource"]["Fn::Sub"]
            if "${OutputBucket}" in text:
                assert variables_["OutputBucket"]["Fn::If"][1] == input_bucket
            else:
                assert text.startswith("arn:${AWS::Partition}:s3:::${InputBucketName}")
                assert variables_["InputBucketName"] == input_bucket
    permission = cfn["Resources"]["InputBucketInvokePermission"]["Properties"]
    text, variables_ = permission["SourceArn"]["Fn::Sub"]
    assert text == f"arn:${{AWS::Partition}}:s3:::{name_text}"
    assert variables_["StackSuffix"] == name_vars["StackSuffix"]


def test_input_bucket_name_is_a_valid_unique_bucket_name(stack: LocalStack) -> None:
    # Built by the local stack from the template expression with a stack id like CloudFormation's.
    name = stack.bucket
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name)
    assert name.endswith(stack.stack_id.rsplit("-", 1)[1])
    longest_region = "ap-southeast-5"
    assert len(name) - len(stack.region) + len(longest_region) <= 63


# --- least privilege -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_wildcard_actions_or_resources_in_function_policies(cfn: dict[str, Any], function: str) -> None:
    for statement in _statements(cfn, function):
        actions = _as_list(statement["Action"])
        assert "*" not in actions
        assert "s3:*" not in actions
        assert not any(a.endswith(":*") for a in actions), actions
        resources = _as_list(statement["Resource"])
        writes = [a for a in actions if not a.split(":", 1)[1].startswith(READ_ONLY_VERBS)]
        if writes:
            assert "*" not in resources, (function, writes)
        assert "*" not in resources, (function, actions)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_managed_policies_are_only_logs_and_xray(cfn: dict[str, Any], function: str) -> None:
    role = cfn["Resources"][f"{function}Role"]["Properties"]
    assert sorted(role["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    ]


def test_submit_reads_only_the_input_prefix_and_writes_no_s3_object(cfn: dict[str, Any]) -> None:
    s3 = [s for s in _statements(cfn, "SubmitFunction") if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    by_actions = {tuple(sorted(_as_list(s["Action"]))): s for s in s3}
    assert set(by_actions) == {("s3:GetObject", "s3:GetObjectVersion"), ("s3:ListBucket",)}
    assert _sub_text(by_actions[("s3:GetObject", "s3:GetObjectVersion")]["Resource"]).endswith("/${InputPrefix}*")
    _assert_lists_only_the_input_prefix(by_actions[("s3:ListBucket",)])


def test_poll_writes_only_under_the_output_prefix(cfn: dict[str, Any]) -> None:
    s3 = [s for s in _statements(cfn, "PollFunction") if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    listings = [s for s in s3 if _as_list(s["Action"]) == ["s3:ListBucket"]]
    by_actions = {tuple(sorted(_as_list(s["Action"]))): _sub_text(s["Resource"]) for s in s3 if s not in listings}
    assert by_actions == {
        ("s3:GetObject", "s3:GetObjectVersion"): by_actions[("s3:GetObject", "s3:GetObjectVersion")],
        ("s3:AbortMultipartUpload", "s3:PutObject"): "arn:${AWS::Partition}:s3:::${OutputBucket}/${OutputPrefix}*",
        # Reading the previous sidecar and deleting the media it named, once a re-upload's set replaces them.
        ("s3:DeleteObject", "s3:GetObject"): "arn:${AWS::Partition}:s3:::${OutputBucket}/${OutputPrefix}*",
    }
    assert by_actions[("s3:GetObject", "s3:GetObjectVersion")].endswith("/${InputPrefix}*")
    input_listing, output_listing = listings
    _assert_lists_only_the_input_prefix(input_listing)
    assert _sub_text(output_listing["Resource"]) == "arn:${AWS::Partition}:s3:::${OutputBucket}"
    assert output_listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${OutputPrefix}*"}}}


def _assert_lists_only_the_input_prefix(statement: dict[str, Any]) -> None:
    """ListBucket on the input bucket itself (so a missing key answers 404), limited to keys under InputPrefix."""
    assert _sub_text(statement["Resource"]) == "arn:${AWS::Partition}:s3:::${InputBucketName}"
    assert statement["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${InputPrefix}*"}}}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_touch_only_the_jobs_table_the_secret_and_their_events(cfn: dict[str, Any], function: str) -> None:
    for statement in _statements(cfn, function):
        actions = _as_list(statement["Action"])
        if any(a.startswith("dynamodb:") for a in actions):
            if function == "SubmitFunction":
                # Its code path writes the table (claim and saves PutItem, the newest-upload mark and slots
                # UpdateItem), reads one item (the newest-upload record) and queries only the slot-holders index.
                if actions == ["dynamodb:Query"]:
                    assert statement["Resource"] == {"Fn::Sub": "${JobsTable.Arn}/index/slot-holders"}
                    continue
                # A batch file's rows: BatchWriteItem.
                assert sorted(actions) == [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                ]
                assert statement["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
                continue
            # A batch's report reads its jobs: BatchGetItem; a half-written batch's rows are finished: BatchWriteItem.
            assert sorted(actions) == [
                "dynamodb:BatchGetItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ]
            assert statement["Resource"] == [
                {"Fn::GetAtt": ["JobsTable", "Arn"]},
                {"Fn::Sub": "${JobsTable.Arn}/index/*"},
            ]
        if any(a.startswith("secretsmanager:") for a in actions):
            assert actions == ["secretsmanager:GetSecretValue"]
            assert statement["Resource"] == {
                "Fn::If": ["CreateApiKeySecret", {"Ref": "ApiKeySecret"}, {"Ref": "ApiKeySecretArn"}]
            }
        if any(a.startswith("events:") for a in actions):
            assert actions == ["events:PutEvents"]
            assert statement["Resource"] == {
                "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
            }
            assert statement["Condition"] == {"StringEquals": {"events:source": "seedance.pipeline"}}
        if any(a.startswith("kms:") for a in actions):
            # Only the buckets' own keys, only through S3 (test_template_kms.py has the details).
            assert statement["Resource"] in (
                {"Ref": "BucketKmsKeyArn"},
                {"Fn::If": ["HasOutputBucketKmsKey", {"Ref": "OutputBucketKmsKeyArn"}, {"Ref": "BucketKmsKeyArn"}]},
            )
            assert set(statement["Condition"]) == {"StringEquals", "StringLike"}
        if any(a.startswith("sqs:") for a in actions):
            assert function == "SubmitFunction"
            assert actions == ["sqs:SendMessage"]
            assert statement["Resource"] == {"Fn::GetAtt": ["SubmitFailureQueue", "Arn"]}


# --- events, retries, schedule ------------------------------------------------------------------------------------


def test_uploads_under_the_input_prefix_trigger_the_submit_function(cfn: dict[str, Any]) -> None:
    bucket = cfn["Resources"]["InputBucket"]
    (config,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Function"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": {"Ref": "InputPrefix"}}]
    # S3 verifies it may invoke the function when the configuration is saved: the permission comes first.
    assert "InputBucketInvokePermission" in _as_list(bucket["DependsOn"])
    permission = cfn["Resources"]["InputBucketInvokePermission"]["Properties"]
    assert permission["Principal"] == "s3.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["FunctionName"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}


def test_failed_submit_invocations_retry_twice_then_land_in_the_failure_queue(cfn: dict[str, Any]) -> None:
    config = cfn["Resources"]["SubmitFunctionEventInvokeConfig"]["Properties"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["SubmitFailureQueue", "Arn"]}
    queue = cfn["Resources"]["SubmitFailureQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 1209600
    assert queue["SqsManagedSseEnabled"] is True


def test_poll_runs_every_minute_without_retries(cfn: dict[str, Any]) -> None:
    rule = cfn["Resources"]["PollFunctionEveryMinute"]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert cfn["Resources"]["PollFunction"]["Properties"]["Timeout"] == 300
    assert cfn["Resources"]["PollFunctionEventInvokeConfig"]["Properties"]["MaximumRetryAttempts"] == 0


def test_no_function_that_may_write_batch_rows_outlives_the_batch_writers_grace(cfn: dict[str, Any]) -> None:
    """A half-written batch is taken over WRITER_GRACE_SECONDS after its writer's lease, and its rows are written
    without conditions: by then the writer's invocation must be over (SubmitFunction writes rows, PollFunction
    resumes them; every function carries the layer that can)."""
    timeouts = {
        name: resource["Properties"].get("Timeout", 3)
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert set(FUNCTIONS) <= set(timeouts)
    too_long = {name: seconds for name, seconds in timeouts.items() if seconds > WRITER_GRACE_SECONDS}
    assert not too_long, f"raise WRITER_GRACE_SECONDS (models.py) to at least these Timeouts: {too_long}"


# --- data resources ------------------------------------------------------------------------------------------------


def test_input_bucket_is_private_encrypted_and_tls_only(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["InputBucket"]["Properties"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    policy = cfn["Resources"]["InputBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_jobs_table_built_in_moto_has_the_documented_keys_indexes_and_ttl(stack: LocalStack) -> None:
    ddb = stack.client("dynamodb")
    table = ddb.describe_table(TableName=stack.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {
        "job_id": "S",
        "due_shard": "S",
        "next_check_at": "N",
        "slot_pool": "S",
        "holder": "S",
    }
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"due-jobs", "slot-holders"}
    assert indexes["due-jobs"]["KeySchema"] == [
        {"AttributeName": "due_shard", "KeyType": "HASH"},
        {"AttributeName": "next_check_at", "KeyType": "RANGE"},
    ]
    assert indexes["due-jobs"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(DUE_INDEX_ATTRIBUTES),
    }
    assert indexes["slot-holders"]["KeySchema"] == [
        {"AttributeName": "slot_pool", "KeyType": "HASH"},
        {"AttributeName": "holder", "KeyType": "RANGE"},
    ]
    assert indexes["slot-holders"]["Projection"]["ProjectionType"] == "KEYS_ONLY"
    ttl = ddb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = ddb.describe_continuous_backups(TableName=stack.table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_due_jobs_index_is_sparse_and_ordered_by_next_check(stack: LocalStack) -> None:
    table = stack.resource("dynamodb").Table(stack.table_name)
    now = int(time.time())
    table.put_item(Item={"job_id": "live-late", "due_shard": "0", "next_check_at": now + 60, "status": "SUBMITTED"})
    table.put_item(Item={"job_id": "live-due", "due_shard": "0", "next_check_at": now - 5, "status": "RUNNING"})
    table.put_item(Item={"job_id": "done", "status": "SUCCEEDED", "task_id": "cgt-1", "expires_at": now + 86400})
    from boto3.dynamodb.conditions import Key

    due = table.query(
        IndexName="due-jobs", KeyConditionExpression=Key("due_shard").eq("0") & Key("next_check_at").lte(now)
    )["Items"]
    assert [i["job_id"] for i in due] == ["live-due"]
    everything = table.query(IndexName="due-jobs", KeyConditionExpression=Key("due_shard").eq("0"))["Items"]
    assert [i["job_id"] for i in everything] == ["live-due", "live-late"]
    assert everything[0]["next_check_at"] == Decimal(now - 5)


# --- tooling files -------------------------------------------------------------------------------------------------


def test_samconfig_names_the_stack_and_deploys_with_iam_capability() -> None:
    config = tomllib.loads((REPO / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["version"] == 0.1
    assert config["default"]["global"]["parameters"]["stack_name"] == "seedance-s3-pipeline"
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert config["default"]["validate"]["parameters"]["lint"] is True


def test_template_passes_cfn_lint() -> None:
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(TEMPLATE_PATH)
    assert [str(m) for m in matches] == []
