"""The local AWS stack: moto in server mode, resources from template.yaml, reached over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from seedance_local.local_stack import LOCAL_API_BASE_URL, LocalStack, LocalStackError
from seedance_local.stack_template import find_template, load_template, parameter_defaults

TEMPLATE_PATH = find_template(Path(__file__).resolve())
API_KEY = "local-stack-test-key"
OVERRIDES = {"ReturnLastFrame": "true", "MaxInFlight": 3, "Resolution": "1080p"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(api_key=API_KEY, parameters=OVERRIDES, template_path=TEMPLATE_PATH) as local:
        yield local


def _refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_stack_listens_on_a_loopback_http_port(stack: LocalStack) -> None:
    assert stack.endpoint_url == f"http://127.0.0.1:{stack.port}"
    assert stack.region == "us-east-1"
    assert stack.running
    assert not _refused(stack.port)


def test_bucket_stores_objects_with_user_metadata_over_http(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="uploads/cats/tom.png", Body=b"\x89PNG...", Metadata={"prompt": "hi"})
    got = s3.get_object(Bucket=stack.bucket, Key="uploads/cats/tom.png")
    assert got["Body"].read() == b"\x89PNG..."
    assert got["Metadata"] == {"prompt": "hi"}
    assert got["ServerSideEncryption"] == "AES256"


def test_presigned_urls_work_for_a_plain_http_client(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="uploads/presigned.jpg", Body=b"jpeg bytes")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": stack.bucket, "Key": "uploads/presigned.jpg"}, ExpiresIn=60
    )
    assert url.startswith(stack.endpoint_url)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"jpeg bytes"


def test_multipart_uploads_complete_under_the_output_prefix(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    key = "videos/cats/tom.mp4"
    upload = s3.create_multipart_upload(Bucket=stack.bucket, Key=key, ContentType="video/mp4")
    parts = []
    for number, body in enumerate((b"a" * (5 * 1024 * 1024), b"b" * 10), start=1):
        part = s3.upload_part(Bucket=stack.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=stack.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    head = s3.head_object(Bucket=stack.bucket, Key=key)
    assert head["ContentLength"] == 5 * 1024 * 1024 + 10
    assert head["ContentType"] == "video/mp4"


def test_bucket_settings_come_from_the_template(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert set(block.values()) == {True}
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=stack.bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (encryption,) = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ownership = s3.get_bucket_ownership_controls(Bucket=stack.bucket)["OwnershipControls"]
    assert ownership == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_tls_only_bucket_policy_is_the_one_documented_local_deviation(stack: LocalStack) -> None:
    (deviation,) = stack.deviations
    assert deviation.startswith("InputBucketPolicy: statement DenyInsecureTransport")
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        stack.client("s3").get_bucket_policy(Bucket=stack.bucket)


def test_table_supports_conditional_writes_over_http(stack: LocalStack) -> None:
    ddb = stack.client("dynamodb")
    item = {"job_id": {"S": "job-claim-test"}, "status": {"S": "SUBMITTED"}}
    ddb.put_item(TableName=stack.table_name, Item=item, ConditionExpression="attribute_not_exists(job_id)")
    with pytest.raises(ClientError) as duplicate:
        ddb.put_item(TableName=stack.table_name, Item=item, ConditionExpression="attribute_not_exists(job_id)")
    assert duplicate.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    got = ddb.get_item(TableName=stack.table_name, Key={"job_id": {"S": "job-claim-test"}}, ConsistentRead=True)
    assert got["Item"]["status"] == {"S": "SUBMITTED"}


def test_secret_holds_the_api_key_and_is_what_the_functions_are_told(stack: LocalStack) -> None:
    sm = stack.client("secretsmanager")
    secret = sm.get_secret_value(SecretId=stack.secret_id)
    assert secret["SecretString"] == API_KEY
    assert stack.secret_id == secret["ARN"]
    assert stack.environment()["API_KEY_SECRET_ID"] == stack.secret_id
    assert stack.resources["ApiKeySecret"] == stack.secret_id
    assert sm.describe_secret(SecretId=stack.secret_id)["Name"].startswith("ApiKeySecret-")


def test_failure_queue_carries_messages_and_keeps_them_two_weeks(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.failure_queue_url, MessageBody=json.dumps({"condition": "RetriesExhausted"}))
    messages = sqs.receive_message(QueueUrl=stack.failure_queue_url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(messages[0]["Body"]) == {"condition": "RetriesExhausted"}
    attributes = sqs.get_queue_attributes(QueueUrl=stack.failure_queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_schedule_rule_exists_without_lambda_targets(stack: LocalStack) -> None:
    events = stack.client("events")
    rule = events.describe_rule(Name=stack.resources["PollFunctionEveryMinute"])
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert events.list_targets_by_rule(Rule=rule["Name"])["Targets"] == []


def test_resources_without_a_local_stand_in_are_listed(stack: LocalStack) -> None:
    skipped = stack.skipped_resources
    assert skipped["SubmitFunction"] == "AWS::Lambda::Function"
    assert skipped["PollFunctionRole"] == "AWS::IAM::Role"
    assert not {"InputBucket", "JobsTable", "SubmitFailureQueue", "ApiKeySecret"} & set(skipped)


def test_with_callbacks_off_there_is_no_function_url_and_lambda_calls_reach_the_local_invoke_api(
    stack: LocalStack,
) -> None:
    services = stack.lambda_services
    assert services is not None
    assert services.urls == {}
    assert "CallbackFunction" not in services.timeouts
    env = stack.environment()
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == services.emulator.endpoint_url
    assert (env["CALLBACK_URL"], env["CALLBACK_SIGNING_SECRET_ID"]) == ("", "")


def test_environment_has_every_function_variable_from_the_template(stack: LocalStack) -> None:
    env = stack.environment(api_base_url="http://127.0.0.1:8787")
    for function in ("SubmitFunction", "PollFunction"):
        assert set(stack.function_environments[function]) <= set(env)
    defaults = parameter_defaults(load_template(TEMPLATE_PATH))
    assert env["API_BASE_URL"] == "http://127.0.0.1:8787"
    assert env["RETURN_LAST_FRAME"] == "true"
    assert env["MAX_IN_FLIGHT"] == "3"
    assert env["RESOLUTION"] == "1080p"
    assert env["MODEL"] == defaults["Model"]
    assert env["DEFAULT_PROMPT"] == defaults["DefaultPrompt"]
    assert env["INPUT_PREFIX"] == defaults["InputPrefix"] == "uploads/"
    assert env["OUTPUT_PREFIX"] == defaults["OutputPrefix"] == "videos/"
    assert env["MAX_JOB_AGE_MINUTES"] == defaults["MaxJobAgeMinutes"]
    assert env["INPUT_BUCKET"] == env["OUTPUT_BUCKET"] == stack.bucket == stack.output_bucket
    assert env["JOBS_TABLE_NAME"] == stack.table_name
    assert env["POWERTOOLS_SERVICE_NAME"] == stack.stack_name  # per-stack metrics and alarms
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SeedancePipeline"
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["ALLOW_PRIVATE_DOWNLOADS"] == "true"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert API_KEY not in env.values()


def test_environment_overrides_set_and_remove_variables(stack: LocalStack) -> None:
    env = stack.environment(function="PollFunction", MAX_IN_FLIGHT=1, POWERTOOLS_TRACE_DISABLED=None)
    assert env["MAX_IN_FLIGHT"] == "1"
    assert "POWERTOOLS_TRACE_DISABLED" not in env
    assert env["API_BASE_URL"] == LOCAL_API_BASE_URL


def test_a_separate_process_reaches_moto_with_just_the_environment(stack: LocalStack, tmp_path: Path) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key="uploads/from-env.txt", Body=b"ok")
    script = (
        "import os, boto3\n"
        "s3 = boto3.client('s3')\n"
        "body = s3.get_object(Bucket=os.environ['INPUT_BUCKET'], Key='uploads/from-env.txt')['Body'].read()\n"
        "sm = boto3.client('secretsmanager')\n"
        "key = sm.get_secret_value(SecretId=os.environ['API_KEY_SECRET_ID'])['SecretString']\n"
        "print(body.decode(), key)\n"
    )
    env = {**stack.environment(), "HOME": str(tmp_path), "AWS_CONFIG_FILE": "/dev/null"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", API_KEY]


def test_boto3_session_is_bound_to_the_endpoint(stack: LocalStack) -> None:
    session = stack.boto3_session()
    assert session.client("dynamodb").meta.endpoint_url == stack.endpoint_url
    tables = session.client("dynamodb").list_tables()["TableNames"]
    assert stack.table_name in tables
    assert session.resource("s3").Bucket(stack.bucket).creation_date is not None


def test_invalid_parameters_fail_before_any_server_starts() -> None:
    with pytest.raises(LocalStackError, match="Duration='7'"):
        LocalStack.start(parameters={"Duration": "7"}, template_path=TEMPLATE_PATH)


def test_existing_secret_arn_and_output_bucket_are_used_as_given(stack: LocalStack) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:brought-my-own-AbCdEf"
    with LocalStack.start(
        api_key="",
        parameters={"ApiKeySecretArn": arn, "OutputBucketName": "my-videos-bucket"},
        template_path=TEMPLATE_PATH,
    ) as other:
        assert other.secret_id == arn
        assert "ApiKeySecret" not in other.resources
        assert other.output_bucket == "my-videos-bucket"
        assert other.environment()["OUTPUT_BUCKET"] == "my-videos-bucket"
        other.client("s3").head_bucket(Bucket="my-videos-bucket")
        # A second stack in the same process gets its own names.
        assert other.bucket != stack.bucket
        assert other.table_name != stack.table_name
        assert other.port != stack.port


def test_stop_frees_the_port_and_is_idempotent() -> None:
    local = LocalStack.start(api_key="k", template_path=TEMPLATE_PATH)
    port = local.port
    local.client("s3").list_buckets()
    local.stop()
    assert not local.running
    assert _refused(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    local.stop()


def test_context_manager_stops_the_server() -> None:
    with LocalStack.start(api_key="k", template_path=TEMPLATE_PATH) as local:
        port = local.port
        assert not _refused(port)
    assert _refused(port)
