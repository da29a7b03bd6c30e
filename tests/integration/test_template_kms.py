"""template.yaml on buckets encrypted with customer managed KMS keys: each function may use exactly the key of the
bucket it reads or writes, for exactly the action it needs, only through S3 and only for that bucket's objects.

The template is resolved for given parameter values as CloudFormation would deploy it (conditions decided,
parameters substituted), so each test reads the statements that would really exist.
"""

from __future__ import annotations

from typing import Any

import pytest

from seedance_local.intrinsics import LocalStackError
from seedance_local.stack_template import resolve_parameters, resolve_template

INPUT_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
OUTPUT_KEY = "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
EXISTING = "team-media"
OUTPUTS = "team-videos"
S3_IN_REGION = "s3.us-east-1.amazonaws.com"
DELIVERING = ("PollFunction", "CallbackWorkerFunction")


def _statements(deployed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = deployed["Resources"][f"{function}Role"]["Properties"]
    found: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        found.extend([statements] if isinstance(statements, dict) else statements)
    return found


def _kms(deployed: dict[str, Any], function: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _statements(deployed, function) if str(s["Action"]).startswith(("kms:", "['kms:"))}


def _environment(deployed: dict[str, Any], function: str) -> dict[str, Any]:
    variables: dict[str, Any] = deployed["Resources"][function]["Properties"]["Environment"]["Variables"]
    return variables


def _context(bucket: str, prefix: str) -> dict[str, Any]:
    # With S3 Bucket Keys the encryption context is the bucket's ARN, without them the object's.
    return {
        "StringEquals": {"kms:ViaService": S3_IN_REGION},
        "StringLike": {
            "kms:EncryptionContext:aws:s3:arn": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}*"]
        },
    }


def _deploy(cfn: dict[str, Any], **parameters: str) -> dict[str, Any]:
    return resolve_template(cfn, {"ApiKey": "k", "CallbackMode": "on", **parameters})


def test_without_keys_no_function_may_use_kms_and_the_created_bucket_uses_sse_s3(cfn: dict[str, Any]) -> None:
    deployed = _deploy(cfn)
    for function in ("SubmitFunction", *DELIVERING):
        assert _kms(deployed, function) == {}
        assert _environment(deployed, function)["OUTPUT_KMS_KEY_ARN"] == ""
    encryption = deployed["Resources"]["InputBucket"]["Properties"]["BucketEncryption"]
    assert encryption == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }


def test_an_existing_sse_kms_bucket_grants_decrypt_for_inputs_and_data_keys_for_outputs_on_its_key(
    cfn: dict[str, Any],
) -> None:
    deployed = _deploy(cfn, ExistingBucketName=EXISTING, BucketKmsKeyArn=INPUT_KEY)
    decrypt = {
        "Sid": "DecryptUploads",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": INPUT_KEY,
        "Condition": _context(EXISTING, "uploads/"),
    }
    encrypt = {
        "Sid": "EncryptOutputs",
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": INPUT_KEY,
        "Condition": _context(EXISTING, "videos/"),
    }
    assert _kms(deployed, "SubmitFunction") == {"DecryptUploads": decrypt}
    assert _kms(deployed, "PollFunction") == {"DecryptUploads": decrypt, "EncryptOutputs": encrypt}
    # The callback worker delivers, and never reads an upload (its HeadObject needs no key); the public intake has no
    # KMS grant at all.
    assert _kms(deployed, "CallbackWorkerFunction") == {"EncryptOutputs": encrypt}
    assert _kms(deployed, "CallbackFunction") == {}
    for function in ("SubmitFunction", *DELIVERING):
        assert _environment(deployed, function)["OUTPUT_KMS_KEY_ARN"] == INPUT_KEY
    assert "InputBucket" not in deployed["Resources"]


def test_an_output_bucket_with_a_key_of_its_own_is_written_with_that_key_alone(cfn: dict[str, Any]) -> None:
    deployed = _deploy(
        cfn,
        ExistingBucketName=EXISTING,
        BucketKmsKeyArn=INPUT_KEY,
        OutputBucketName=OUTPUTS,
        OutputBucketKmsKeyArn=OUTPUT_KEY,
    )
    for function in DELIVERING:
        encrypt = _kms(deployed, function)["EncryptOutputs"]
        assert encrypt["Resource"] == OUTPUT_KEY
        assert encrypt["Condition"] == _context(OUTPUTS, "videos/")
        assert _environment(deployed, function)["OUTPUT_KMS_KEY_ARN"] == OUTPUT_KEY
    # The input key reads the input bucket only; no statement lets the output key touch the inputs.
    for function in ("SubmitFunction", "PollFunction"):
        decrypt = _kms(deployed, function)["DecryptUploads"]
        assert decrypt["Resource"] == INPUT_KEY
        assert decrypt["Condition"] == _context(EXISTING, "uploads/")


def test_an_output_bucket_without_a_key_gets_no_grant_and_keeps_its_default_encryption(cfn: dict[str, Any]) -> None:
    deployed = _deploy(cfn, ExistingBucketName=EXISTING, BucketKmsKeyArn=INPUT_KEY, OutputBucketName=OUTPUTS)
    for function in DELIVERING:
        assert "EncryptOutputs" not in _kms(deployed, function)
        assert _environment(deployed, function)["OUTPUT_KMS_KEY_ARN"] == ""


def test_the_stacks_own_bucket_is_created_with_the_key_and_a_bucket_key(cfn: dict[str, Any]) -> None:
    deployed = _deploy(cfn, BucketKmsKeyArn=INPUT_KEY)
    bucket = deployed["Resources"]["InputBucket"]["Properties"]
    assert bucket["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": INPUT_KEY},
                "BucketKeyEnabled": True,
            }
        ]
    }
    decrypt = _kms(deployed, "SubmitFunction")["DecryptUploads"]
    assert decrypt["Condition"] == _context(bucket["BucketName"], "uploads/")
    assert _kms(deployed, "PollFunction")["EncryptOutputs"]["Condition"] == _context(bucket["BucketName"], "videos/")


@pytest.mark.parametrize("value", ["alias/aws/s3", "11111111-2222-3333-4444-555555555555", "arn:aws:s3:::bucket"])
def test_a_key_that_is_not_a_key_arn_is_refused_at_deployment(sam: dict[str, Any], value: str) -> None:
    # IAM statements and the encryption of outputs need the key's full ARN.
    with pytest.raises(LocalStackError, match="BucketKmsKeyArn"):
        resolve_parameters(sam, {"ApiKey": "k", "BucketKmsKeyArn": value})
    with pytest.raises(LocalStackError, match="OutputBucketKmsKeyArn"):
        resolve_parameters(sam, {"ApiKey": "k", "OutputBucketName": OUTPUTS, "OutputBucketKmsKeyArn": value})
