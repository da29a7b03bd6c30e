"""Make the local stack's S3 use the KMS key an object is encrypted with, as S3 does with SSE-KMS.

S3 decrypts an SSE-KMS object on every GetObject (and on the GET of a presigned URL) and asks KMS for a data key on
every PutObject and CreateMultipartUpload, with the caller's permission on the key: a key that is missing, disabled,
pending deletion or that refuses the caller fails the request. moto records the key on the object but never asks
its KMS, so a bucket whose key refuses the functions would work locally and fail deployed. These wrappers put the
check back, against moto's own KMS in the same process:

- a key moto's KMS does not know: `KMS.NotFoundException`;
- a disabled key: `KMS.DisabledException`; a key pending deletion: `KMS.KMSInvalidStateException`;
- a presigned URL signed with SigV2 (S3 serves SSE-KMS objects to SigV4 only): `InvalidArgument`;
- a key whose key policy denies the action (an explicit `Deny` of kms:Decrypt or kms:GenerateDataKey, the way a
  test makes "a key that does not admit the functions' roles"): `AccessDenied`, with the message S3 gives,
  naming the action and the key.

moto cannot tell one caller from another (every local client signs with the same dummy key), so the functions'
IAM grants are not evaluated here: the template's KMS statements are checked by the template tests instead. HEAD
needs no key, as in S3. Dev tooling only: nothing here is shipped to Lambda.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_applied = False
_KMS = "aws:kms"
# The caller named in the refusals moto raises: a role name as S3 would quote it (moto has no real principals).
_CALLER = "assumed-role/seedance-local/function"


def apply_kms_buckets() -> None:
    """Wrap moto's S3 reads and writes of SSE-KMS objects in a check of their key (once; later calls do nothing)."""
    global _applied
    with _lock:
        if _applied:
            return
        from moto.s3.models import S3Backend
        from moto.s3.responses import S3Response

        setattr(S3Response, "get_object", _checked_read(S3Response.get_object))  # noqa: B010 (a method: mypy)
        setattr(S3Backend, "put_object", _checked_write(S3Backend.put_object))  # noqa: B010
        setattr(S3Backend, "create_multipart_upload", _checked_multipart(S3Backend.create_multipart_upload))  # noqa: B010
        _applied = True


def _checked_read(get_object: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(get_object)
    def read(self: Any) -> Any:
        version_id = self.querystring.get("versionId", [None])[0]
        key = self.backend.get_object(self.bucket_name, self.parse_key_name(), version_id=version_id)
        if key is not None and key.encryption == _KMS:
            if "Signature" in self.querystring and "X-Amz-Algorithm" not in self.querystring:
                from moto.s3.exceptions import S3ClientError

                # A presigned URL signed with SigV2: S3 serves no SSE-KMS object through one.
                raise S3ClientError(
                    "InvalidArgument",
                    "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature "
                    "Version 4.",
                )
            _check(self.backend.account_id, key.region_name, key.kms_key_id, "kms:Decrypt")
        return get_object(self)

    return read


def _checked_write(put_object: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(put_object)
    def write(self: Any, bucket_name: str, key_name: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        encryption, key_id = _effective(self, bucket_name, kwargs.get("encryption"), kwargs.get("kms_key_id"))
        if encryption == _KMS:
            _check(self.account_id, self.get_bucket(bucket_name).region_name, key_id, "kms:GenerateDataKey")
        return put_object(self, bucket_name, key_name, value, *args, **kwargs)

    return write


def _checked_multipart(create: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(create)

    @functools.wraps(create)
    def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs).arguments
        bucket_name = call["bucket_name"]
        encryption, key_id = _effective(self, bucket_name, call.get("sse_encryption"), call.get("kms_key_id"))
        if encryption == _KMS:
            _check(self.account_id, self.get_bucket(bucket_name).region_name, key_id, "kms:GenerateDataKey")
        return create(self, *args, **kwargs)

    return start


def _effective(backend: Any, bucket_name: str, encryption: str | None, key_id: str | None) -> tuple[str | None, str]:
    """The encryption S3 applies: the request's own, else the bucket's default (as moto's put_object decides it)."""
    rule = (backend.get_bucket(bucket_name).encryption or {}).get("Rule", {})
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    encryption = encryption or default.get("SSEAlgorithm")
    return encryption, key_id or default.get("KMSMasterKeyID") or ""


def _check(account_id: str, region: str, key_ref: str | None, action: str) -> None:
    from moto.kms.models import kms_backends
    from moto.s3.exceptions import S3ClientError

    if not key_ref:
        return  # the AWS managed aws/s3 key: every principal of the account may use it through S3
    if key_ref.startswith("arn:"):
        _, _, _, region, account_id, _ = key_ref.split(":", 5)
    kms = kms_backends[account_id][region]
    try:
        key = kms.keys[kms.any_id_to_key_id(key_ref)]
    except (KeyError, TypeError, AttributeError):
        raise S3ClientError("KMS.NotFoundException", f"Invalid keyId '{key_ref}'") from None
    if key.key_state == "PendingDeletion":
        raise S3ClientError("KMS.KMSInvalidStateException", f"{key.arn} is pending deletion.")
    if key.key_state != "Enabled":
        raise S3ClientError("KMS.DisabledException", f"{key.arn} is disabled.")
    if _denies(key.policy, action):
        raise S3ClientError(
            "AccessDenied",
            f"User: arn:aws:sts::{account_id}:{_CALLER} is not authorized to perform: {action} on resource: "
            f"{key.arn} with an explicit deny in a resource-based policy",
        )


def _denies(policy: str, action: str) -> bool:
    try:
        statements = json.loads(policy).get("Statement", [])
    except (ValueError, AttributeError):
        return False
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Deny":
            continue
        actions = statement.get("Action", [])
        for pattern in actions if isinstance(actions, list) else [actions]:
            if fnmatch.fnmatchcase(action.lower(), str(pattern).lower()):
                return True
    return False


def create_local_kms_key(region: str, account_id: str, *, description: str, policy: str | None = None) -> str:
    """A customer managed key in moto's KMS, before any stack exists (its ARN is a parameter of the stack, as a
    team's own key exists before they deploy). Returns the key's ARN."""
    from moto.kms.models import kms_backends

    key = kms_backends[account_id][region].create_key(
        policy=policy, key_usage="ENCRYPT_DECRYPT", key_spec="SYMMETRIC_DEFAULT", description=description, tags=None
    )
    return str(key.arn)
