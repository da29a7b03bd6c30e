"""S3's refusals to use a bucket's KMS key become KMS_ACCESS_DENIED; every other S3 error stays what it was.

The S3 client here is a stand-in that only raises the ClientError S3 would send (the adapter's mapping is the
thing under test); the integration tests (test_kms_buckets.py) get the same errors from the local stack's S3.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.adapters.object_storage import ObjectStorage
from seedance_pipeline.errors import ErrorCode, KmsAccessDenied, ObjectGone, Outcome, outcome_of

KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
GONE = {"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412"}


class RefusingS3:
    """Answers every call with one S3 error."""

    def __init__(self, code: str, message: str) -> None:
        self.error = ClientError({"Error": {"Code": code, "Message": message}}, "S3")

    def get_object(self, **_: Any) -> Any:
        raise self.error

    def put_object(self, **_: Any) -> Any:
        raise self.error


def _is_kms(code: str, message: str) -> bool:
    return code.startswith("KMS.") or (code == "AccessDenied" and "kms:" in message.lower())


codes = st.one_of(
    st.sampled_from(["AccessDenied", "KMS.DisabledException", "KMS.NotFoundException", "SlowDown", "InternalError"]),
    st.text(min_size=1, max_size=30),
)
messages = st.one_of(
    st.just(f"User: arn:aws:sts::1:assumed-role/r/f is not authorized to perform: kms:Decrypt on resource: {KEY}"),
    st.just("Access Denied"),
    st.text(max_size=2000),
)


@given(code=codes, message=messages)
def test_an_input_read_is_kms_access_denied_exactly_when_s3_blames_the_key(code: str, message: str) -> None:
    storage = ObjectStorage(RefusingS3(code, message))  # type: ignore[arg-type]
    with pytest.raises((ClientError, ObjectGone, KmsAccessDenied)) as raised:
        storage.read("team-media", "uploads/a.jpg", max_bytes=10)
    error = raised.value
    if code in GONE:
        assert isinstance(error, ObjectGone)
    elif _is_kms(code, message):
        assert isinstance(error, KmsAccessDenied)
        assert error.code == ErrorCode.KMS_ACCESS_DENIED
        assert "s3://team-media/uploads/a.jpg" in error.message and "BucketKmsKeyArn" in error.message
        assert len(error.message) < 1000  # bounded, whatever S3 said
        assert outcome_of(error) is Outcome.REJECTED  # never retried: a configuration fault
    else:
        assert isinstance(error, ClientError)


@given(code=codes, message=messages)
def test_an_output_write_is_kms_access_denied_exactly_when_s3_blames_the_key(code: str, message: str) -> None:
    storage = ObjectStorage(RefusingS3(code, message), output_kms_key_id=KEY)  # type: ignore[arg-type]
    with pytest.raises((ClientError, ObjectGone, KmsAccessDenied)) as raised:
        storage.put_json("team-videos", "videos/a.jpg.json", {})
    if _is_kms(code, message):
        assert isinstance(raised.value, KmsAccessDenied)
        assert "kms:GenerateDataKey" in raised.value.message and "OutputBucketKmsKeyArn" in raised.value.message
    else:
        assert isinstance(raised.value, ClientError)


def test_the_message_names_the_key_and_the_action_s3_quoted() -> None:
    said = f"User: arn:aws:sts::1:assumed-role/r/f is not authorized to perform: kms:Decrypt on resource: {KEY}"
    with pytest.raises(KmsAccessDenied) as raised:
        ObjectStorage(RefusingS3("AccessDenied", said)).read("b", "uploads/a.jpg", max_bytes=10)  # type: ignore[arg-type]
    assert KEY in raised.value.message and "kms:Decrypt" in raised.value.message
