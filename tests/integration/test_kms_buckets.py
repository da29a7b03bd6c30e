"""Buckets encrypted with customer managed KMS keys, end to end on moto and the simulator over real HTTP.

The local stack's S3 uses an object's KMS key as S3 does (seedance_local.moto_kms_buckets): a read needs the key to
decrypt, a write to make a data key, and a key that is disabled or whose key policy denies the action fails the
request with the error S3 gives. The keys exist before the stack (a team's key exists before they deploy), and
the team's buckets are encrypted by default with them, as the documentation's "Buckets you already have" describes.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config

from seedance_local.harness import LocalPipeline
from seedance_local.local_stack import LocalStack
from seedance_local.moto_kms_buckets import create_local_kms_key
from seedance_local.stack_template import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from tests.support.images import image_bytes
from tests.support.stack_settings import API_KEY, FAST

pytestmark = pytest.mark.integration


def _key(description: str, policy: dict[str, Any] | None = None) -> str:
    return create_local_kms_key(
        DEFAULT_REGION, DEFAULT_ACCOUNT_ID, description=description, policy=json.dumps(policy) if policy else None
    )


def _deny(action: str) -> dict[str, Any]:
    """A key policy that administers the key but refuses `action` to everyone: the functions' roles included."""
    root = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:root"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "NotThePipeline", "Effect": "Deny", "Principal": "*", "Action": action, "Resource": "*"},
        ],
    }


def _encrypt_by_default(stack: LocalStack, bucket: str, key_arn: str) -> None:
    stack.client("s3").put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )


@pytest.fixture
def kms_stack(request: pytest.FixtureRequest) -> Iterator[tuple[LocalStack, dict[str, str]]]:
    """A stack on the team's buckets: request.param names the keys (input, output) and their key policies."""
    spec: dict[str, Any] = request.param
    keys = {name: _key(f"{request.node.name} {name}", policy) for name, policy in spec["keys"].items()}
    parameters = {"ExistingBucketName": spec["input_bucket"], "BucketKmsKeyArn": keys.get("input", "")}
    if "output_bucket" in spec:
        parameters |= {"OutputBucketName": spec["output_bucket"], "OutputBucketKmsKeyArn": keys.get("output", "")}
    with LocalStack.start(api_key=API_KEY, parameters=parameters) as stack:
        if "input" in keys:
            _encrypt_by_default(stack, spec["input_bucket"], keys["input"])
        yield stack, keys


def _run_one(stack: LocalStack, sim: Any, key: str) -> Any:
    with LocalPipeline(stack, api_base_url=sim.base_url, **FAST) as pipeline:
        result = pipeline.submit(pipeline.upload(key, image_bytes()))
        assert all(outcome.get("job_id") for outcome in result["outcomes"]), result
        (job,) = pipeline.run_until_terminal(timeout=120).values()
        return job


@pytest.mark.parametrize("kms_stack", [{"input_bucket": "team-media-kms", "keys": {"input": None}}], indirect=True)
def test_an_sse_kms_existing_bucket_is_read_and_written_with_its_key(kms_stack, sim) -> None:
    stack, keys = kms_stack
    s3 = stack.client("s3")
    job = _run_one(stack, sim, "uploads/kms/kitten.jpg")

    assert job.status.value == "SUCCEEDED", job
    source = s3.head_object(Bucket=job.source_bucket, Key=job.source_key)
    assert (source["ServerSideEncryption"], source["SSEKMSKeyId"]) == ("aws:kms", keys["input"])
    assert sim.counters.tasks_created == 1
    # The simulator fetched the image through the function's presigned URL, which S3 serves only signed with SigV4.
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in json.dumps(sim.counters.request_bodies)
    for output in (job.outputs.video_key, job.outputs.sidecar_key):
        head = s3.head_object(Bucket=job.outputs.bucket, Key=output)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", keys["input"]), output


@pytest.mark.parametrize(
    "kms_stack",
    [{"input_bucket": "team-media-plain", "output_bucket": "team-videos-kms", "keys": {"output": None}}],
    indirect=True,
)
def test_an_sse_kms_output_bucket_gets_the_results_encrypted_with_its_own_key(kms_stack, sim) -> None:
    stack, keys = kms_stack
    s3 = stack.client("s3")
    # The bucket's default stays SSE-S3 here: the results carry the key because the pipeline names it.
    assert "input" not in keys
    job = _run_one(stack, sim, "uploads/kms/kitten.jpg")

    assert job.status.value == "SUCCEEDED", job
    assert job.outputs.bucket == "team-videos-kms"
    for output in (job.outputs.video_key, job.outputs.sidecar_key):
        head = s3.head_object(Bucket=job.outputs.bucket, Key=output)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", keys["output"]), output
    assert s3.head_object(Bucket=job.source_bucket, Key=job.source_key).get("ServerSideEncryption") != "aws:kms"


@pytest.mark.parametrize(
    "kms_stack", [{"input_bucket": "team-media-denied", "keys": {"input": _deny("kms:Decrypt")}}], indirect=True
)
def test_an_input_key_that_refuses_decrypt_rejects_the_upload_naming_the_grant_before_anything_is_paid(
    kms_stack, sim
) -> None:
    stack, keys = kms_stack
    job = _run_one(stack, sim, "uploads/kms/kitten.jpg")

    assert job.status.value == "REJECTED", job
    assert job.error.code == "KMS_ACCESS_DENIED"
    for named in (keys["input"], "kms:Decrypt", "BucketKmsKeyArn", "team-media-denied"):
        assert named in job.error.message
    assert sim.counters.submit == 0 and sim.counters.tasks_created == 0


@pytest.mark.parametrize(
    "kms_stack",
    [
        {
            "input_bucket": "team-media-ok",
            "output_bucket": "team-videos-denied",
            "keys": {"output": _deny("kms:GenerateDataKey")},
        }
    ],
    indirect=True,
)
def test_an_output_key_that_refuses_data_keys_keeps_the_paid_video_waiting_until_it_is_granted(kms_stack, sim) -> None:
    """The delivery is refused with a recorded reason naming the key, the action and the parameter; the paid video
    is not dropped (a retry would pay again): once the key policy allows the action, the next attempt stores it."""
    stack, keys = kms_stack
    with LocalPipeline(stack, api_base_url=sim.base_url, **FAST) as pipeline:
        pipeline.submit(pipeline.upload("uploads/kms/kitten.jpg", image_bytes()))
        (job_id,) = pipeline.job_ids.values()
        for _ in range(200):
            pipeline.poll()
            job = pipeline.runtime.store.get(job_id)
            if job.last_error is not None or job.status.is_terminal:
                break
            time.sleep(0.2)
        assert not job.status.is_terminal, job
        assert job.last_error.code == "KMS_ACCESS_DENIED"
        for named in (keys["output"], "kms:GenerateDataKey", "OutputBucketKmsKeyArn", "team-videos-denied"):
            assert named in job.last_error.message
        assert stack.client("s3").list_objects_v2(Bucket="team-videos-denied").get("Contents", []) == []

        admin_only = _deny("kms:ScheduleKeyDeletion")  # the operator lifts the deny on data keys
        stack.client("kms").put_key_policy(KeyId=keys["output"], PolicyName="default", Policy=json.dumps(admin_only))
        (job,) = pipeline.run_until_terminal(timeout=120).values()

    assert job.status.value == "SUCCEEDED", job
    assert job.delivery_attempts >= 2
    assert sim.counters.tasks_created == 1
    head = stack.client("s3").head_object(Bucket=job.outputs.bucket, Key=job.outputs.video_key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", keys["output"])


def test_a_disabled_key_is_refused_by_the_local_s3_as_s3_refuses_it(sim) -> None:
    key = _key("disabled later")
    with LocalStack.start(api_key=API_KEY, parameters={"ExistingBucketName": "team-media-disabled"}) as stack:
        _encrypt_by_default(stack, "team-media-disabled", key)
        s3 = stack.client("s3")
        s3.put_object(Bucket="team-media-disabled", Key="uploads/a.jpg", Body=b"x")
        stack.client("kms").disable_key(KeyId=key.rsplit("/", 1)[1])  # moto wants the id here
        with pytest.raises(Exception, match=r"KMS\.DisabledException"):
            s3.get_object(Bucket="team-media-disabled", Key="uploads/a.jpg")
        assert s3.head_object(Bucket="team-media-disabled", Key="uploads/a.jpg")["ContentLength"] == 1


def test_only_a_sigv4_presigned_url_serves_an_sse_kms_image_as_s3_does(sim) -> None:
    # The provider fetches the image through a URL the function signed: S3 serves SSE-KMS objects to SigV4 only (the
    # end-to-end test above has the simulator fetch one of the pipeline's own).
    key = _key("presigned")
    with LocalStack.start(api_key=API_KEY, parameters={"ExistingBucketName": "team-media-presigned"}) as stack:
        _encrypt_by_default(stack, "team-media-presigned", key)
        stack.client("s3").put_object(Bucket="team-media-presigned", Key="uploads/a.jpg", Body=b"image")
        params = {"Bucket": "team-media-presigned", "Key": "uploads/a.jpg"}
        v4 = stack.client("s3", config=Config(signature_version="s3v4")).generate_presigned_url(
            "get_object", Params=params
        )
        with urllib.request.urlopen(v4, timeout=10) as answer:
            assert answer.read() == b"image"
        v2 = stack.client("s3", config=Config(signature_version="s3")).generate_presigned_url(
            "get_object", Params=params
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(v2, timeout=10)
        assert b"Signature Version 4" in refused.value.read()
