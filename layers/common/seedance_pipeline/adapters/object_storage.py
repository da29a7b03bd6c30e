"""S3 adapter: read uploads, presign them for the provider, stream results in as multipart uploads."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from seedance_pipeline.errors import ErrorCode, InvalidInput, KmsAccessDenied, ObjectArchived, ObjectGone
from seedance_pipeline.models import ObjectInfo
from seedance_pipeline.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from seedance_pipeline.ports import Readable

_MAX_JSON_BYTES = 1024**2
_GONE_CODES = {"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412"}
_CHANGED_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}
_WRITE_GRANTS = "kms:GenerateDataKey and kms:Decrypt"
_MAX_KMS_MESSAGE = 500
# GetObject on an object in an archive storage class (GLACIER, DEEP_ARCHIVE, an Intelligent-Tiering archive tier)
# that is not restored: 403 InvalidObjectState. It stays so until someone restores it.
_ARCHIVED_CODES = {"InvalidObjectState"}


class ObjectStorage:
    def __init__(
        self, client: S3Client, *, chunk_bytes: int = 8 * 1024**2, concurrency: int = 4, output_kms_key_id: str = ""
    ) -> None:
        self._client = client
        # Every object this adapter writes is an output: with the output bucket's key, each is encrypted with it
        # whatever the bucket's default says (S3 applies the bucket's Bucket Key setting).
        self._write_args: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": output_kms_key_id} if output_kms_key_id else {}
        )
        self._conditional_writes: bool | None = None
        # Parts upload in parallel from a bounded queue: memory is about (concurrency + 1) x chunk size,
        # whatever the size of the video.
        self._transfer = TransferConfig(
            multipart_threshold=chunk_bytes,
            multipart_chunksize=chunk_bytes,
            max_concurrency=concurrency,
            max_io_queue=concurrency,
            use_threads=True,
        )
        # s3transfer buffers up to 10 parts of a non-seekable stream by default; not a constructor argument.
        self._transfer.max_in_memory_upload_chunks = concurrency

    def read(
        self,
        bucket: str,
        key: str,
        *,
        max_bytes: int,
        version_id: str | None = None,
        etag: str | None = None,
        check_size: Callable[[int], None] | None = None,
    ) -> tuple[ObjectInfo, bytes]:
        """GetObject once: metadata and bytes. check_size runs on ContentLength before the body is read.

        The version id (or, unversioned, the ETag as If-Match) pins the object the event announced, so an
        overwrite since then reads as ObjectGone rather than as someone else's image.
        """
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        elif etag:
            kwargs["IfMatch"] = etag
        try:
            response = self._client.get_object(**kwargs)
        except ClientError as exc:
            if _error_code(exc) in _GONE_CODES:
                raise ObjectGone(f"s3://{bucket}/{key} no longer exists in the announced version") from exc
            if _error_code(exc) in _ARCHIVED_CODES:
                raise ObjectArchived(
                    f"s3://{bucket}/{key} is in an archive storage class and cannot be read (S3 answered "
                    "InvalidObjectState): restore it, or upload it again, then run `seedance-pipeline jobs retry`"
                ) from exc
            _raise_if_kms_denied(exc, bucket, key, "kms:Decrypt", "BucketKmsKeyArn")
            raise
        body = response["Body"]
        info = _info(response)
        try:
            if check_size is not None:
                check_size(info.size)
            data: bytes = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise InvalidInput(f"the object is larger than {max_bytes} bytes", code=ErrorCode.IMAGE_TOO_LARGE)
        return info, data

    def read_head(self, bucket: str, key: str, *, length: int) -> tuple[int, bytes]:
        """A ranged GET: a reference video's kind and size cost one small read, never its whole body."""
        try:
            response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max(length, 1) - 1}")
        except ClientError as exc:
            if _error_code(exc) in _GONE_CODES:
                raise ObjectGone(f"s3://{bucket}/{key} does not exist") from exc
            if _error_code(exc) == "InvalidRange":  # an empty object: no byte 0
                return 0, b""
            _raise_if_kms_denied(exc, bucket, key, "kms:Decrypt", "BucketKmsKeyArn")
            raise
        body = response["Body"]
        try:
            head: bytes = body.read(length)
        finally:
            body.close()
        # "bytes 0-63/12345": the whole object's size follows the slash.
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        return (int(total) if total.isdigit() else int(response.get("ContentLength", len(head)))), head

    def head(self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None) -> ObjectInfo:
        """HeadObject of the object the event announced: the submit function learns a plain image's metadata
        (`takes`) from it without reading the image."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        elif etag:
            # An entity tag in quotes, as RFC 9110 writes it (events give it bare): moto's HEAD, unlike its GET,
            # matches only the quoted form, and S3 takes both.
            kwargs["IfMatch"] = f'"{etag.strip(chr(34))}"'
        try:
            response = self._client.head_object(**kwargs)
        except ClientError as exc:
            # A HEAD has no body to name the error: S3's codes are then "404" and "412", in _GONE_CODES too.
            if _error_code(exc) in _GONE_CODES:
                raise ObjectGone(f"s3://{bucket}/{key} no longer exists in the announced version") from exc
            raise
        return _info(response)

    def presign_get(self, bucket: str, key: str, *, version_id: str | None, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    def upload_stream(self, stream: Readable, bucket: str, key: str, *, content_type: str) -> None:
        """Multipart upload from a stream; on any error boto3 aborts the upload, so no partial object appears."""
        # s3transfer only calls read() on a non-seekable stream.
        try:
            self._client.upload_fileobj(
                cast(IO[bytes], stream),
                bucket,
                key,
                ExtraArgs={"ContentType": content_type, **self._write_args},
                Config=self._transfer,
            )
        except ClientError as exc:
            _raise_if_kms_denied(exc, bucket, key, _WRITE_GRANTS, "OutputBucketKmsKeyArn")
            raise

    def put_json(self, bucket: str, key: str, document: dict[str, Any]) -> None:
        body = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode()
        try:
            self._client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", **self._write_args
            )
        except ClientError as exc:
            _raise_if_kms_denied(exc, bucket, key, _WRITE_GRANTS, "OutputBucketKmsKeyArn")
            raise

    def read_json(self, bucket: str, key: str) -> dict[str, Any] | None:
        """A small JSON document (a sidecar), or None when there is none or it is not a JSON object."""
        return self.read_json_tagged(bucket, key)[0]

    def read_json_tagged(self, bucket: str, key: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _GONE_CODES:
                return None, None
            _raise_if_kms_denied(exc, bucket, key, "kms:Decrypt", "OutputBucketKmsKeyArn")
            raise
        etag = response.get("ETag")
        body = response["Body"]
        try:
            document = json.loads(body.read(_MAX_JSON_BYTES))
        except ValueError:
            return None, etag
        finally:
            body.close()
        return (document if isinstance(document, dict) else None), etag

    @property
    def conditional_writes(self) -> bool:
        """Whether this botocore knows S3's conditional writes (If-Match on PutObject, late 2024). The Lambda runtime
        provides botocore, and one without them would refuse every sidecar switch (ParamValidationError, then a paid
        video ending FAILED): the switch is then an unconditional PUT, as before they existed. Read once, lazily."""
        if self._conditional_writes is None:
            put_input = self._client.meta.service_model.operation_model("PutObject").input_shape
            put_fields = put_input.members if put_input is not None else {}
            self._conditional_writes = "IfMatch" in put_fields and "IfNoneMatch" in put_fields
        return self._conditional_writes

    def replace_json(self, bucket: str, key: str, document: dict[str, Any], *, etag: str | None) -> bool:
        """A conditional PUT (S3 conditional writes: If-Match on the ETag read, If-None-Match: * when there was
        none): two deliveries of one key that each read the sidecar before either wrote cannot both switch it."""
        body = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode()
        condition: dict[str, Any] = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        if not self.conditional_writes:
            logger.warning("this botocore has no S3 conditional writes: the sidecar switch is unconditional")
            condition = {}
        try:
            self._client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json", **condition, **self._write_args
            )
        except ClientError as exc:
            # 412: the object changed; 409 ConditionalRequestConflict: a concurrent conditional write won; 404: an
            # If-Match on a key deleted since.
            if _error_code(exc) in _CHANGED_CODES:
                return False
            _raise_if_kms_denied(exc, bucket, key, _WRITE_GRANTS, "OutputBucketKmsKeyArn")
            raise
        return True

    def current(self, bucket: str, key: str) -> ObjectInfo | None:
        """HeadObject of the key's current object (its ETag and version id), or None when the key has none."""
        try:
            response = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _GONE_CODES:
                return None
            raise
        return _info(response)

    def delete(self, bucket: str, key: str) -> None:
        self._client.delete_object(Bucket=bucket, Key=key)


def _info(response: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        size=int(response.get("ContentLength", 0)),
        content_type=response.get("ContentType"),
        etag=response.get("ETag", "").strip('"') or None,
        version_id=response.get("VersionId"),
        metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _raise_if_kms_denied(exc: ClientError, bucket: str, key: str, grants: str, parameter: str) -> None:
    """S3's refusals to use a bucket's KMS key: `KMS.*` codes (a disabled, missing or deleted key), or AccessDenied
    naming a kms: action (the role holds no grant on the key). Any other AccessDenied is not the key's doing."""
    code = _error_code(exc)
    said = str(exc.response.get("Error", {}).get("Message", ""))[:_MAX_KMS_MESSAGE]
    if not (code.startswith("KMS.") or (code == "AccessDenied" and "kms:" in said.lower())):
        return
    raise KmsAccessDenied(
        f"s3://{bucket}/{key}: S3 could not use the bucket's KMS key ({code}: {said}). Set {parameter} to that key's "
        f"ARN (the stack then grants {grants} on it) and make sure the key is enabled and its key policy lets IAM "
        "policies of this account grant it"
    ) from exc
