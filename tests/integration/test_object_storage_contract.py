"""One contract, two storages: every case runs on the in-memory FakeStorage the unit tests use and on the real
ObjectStorage adapter over S3 (moto in server mode, real HTTP). Where they disagree, the fake is wrong (or, when S3's
documented behaviour says so, the adapter).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from seedance_local.local_stack import LocalStack
from seedance_pipeline.adapters.object_storage import ObjectStorage
from seedance_pipeline.errors import ErrorCode, InvalidInput, ObjectGone
from seedance_pipeline.ports import ObjectStoragePort
from tests.support.fakes import FakeStorage

PLAIN = "contract-plain"  # versioning off, as template.yaml leaves the input bucket
VERSIONED = "contract-versioned"  # versioning on, as an operator may turn it on


@dataclass
class Backend:
    """The storage under test, and how a test puts an object into it the way someone else (an upload) would."""

    storage: ObjectStoragePort
    put: Callable[[str, str, bytes, dict[str, str]], str | None]  # -> the new version id (None when unversioned)


def _fake() -> Backend:
    fake = FakeStorage()
    fake.versioned_buckets.add(VERSIONED)

    def put(bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> str | None:
        return fake.add(bucket, key, data, metadata, etag=f"etag-{uuid.uuid4().hex}")

    return Backend(fake, put)


def _s3(stack: LocalStack) -> Backend:
    client = stack.client("s3")
    for bucket in (PLAIN, VERSIONED):
        try:
            where = {} if stack.region == "us-east-1" else {"LocationConstraint": stack.region}
            client.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": where} if where else {}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
    client.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})

    def put(bucket: str, key: str, data: bytes, metadata: dict[str, str]) -> str | None:
        version: str | None = client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata).get("VersionId")
        return version

    return Backend(ObjectStorage(client, chunk_bytes=5 * 1024**2, concurrency=2), put)


@pytest.fixture(params=["fake", "s3"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "fake":
        return _fake()
    return _s3(request.getfixturevalue("module_stack"))


def _key(name: str) -> str:
    return f"uploads/{uuid.uuid4().hex[:8]}/{name}"  # cases share one moto server: each uses its own keys


# --- reading an upload ------------------------------------------------------------------------------


def test_an_object_reads_back_with_its_size_and_etag(backend: Backend) -> None:
    key = _key("cat.jpg")
    backend.put(PLAIN, key, b"jpeg-bytes", {})
    info, data = backend.storage.read(PLAIN, key, max_bytes=100)
    assert data == b"jpeg-bytes" and info.size == 10
    assert info.etag and '"' not in info.etag
    again, _ = backend.storage.read(PLAIN, key, max_bytes=100, etag=info.etag)  # pinned to what was read
    assert again.etag == info.etag


def test_metadata_keys_read_back_in_lower_case_as_s3_returns_them(backend: Backend) -> None:
    key = _key("cat.jpg")
    backend.put(PLAIN, key, b"x", {"Prompt": "A Cat", "SEEDANCE-Model": "Lite", "resolution": "720p"})
    info, _ = backend.storage.read(PLAIN, key, max_bytes=100)
    assert info.metadata == {"prompt": "A Cat", "seedance-model": "Lite", "resolution": "720p"}


def test_an_object_over_the_size_cap_is_refused_as_image_too_large(backend: Backend) -> None:
    key = _key("big.jpg")
    backend.put(PLAIN, key, b"x" * 101, {})
    with pytest.raises(InvalidInput) as caught:
        backend.storage.read(PLAIN, key, max_bytes=100)
    assert caught.value.code == ErrorCode.IMAGE_TOO_LARGE
    assert "100 bytes" in caught.value.message
    info, data = backend.storage.read(PLAIN, key, max_bytes=101)
    assert len(data) == 101 == info.size


def test_the_size_check_sees_the_size_before_the_body_is_read(backend: Backend) -> None:
    key = _key("big.jpg")
    backend.put(PLAIN, key, b"x" * 64, {})
    seen: list[int] = []

    def refuse(size: int) -> None:
        seen.append(size)
        raise InvalidInput("too big for this caller", code=ErrorCode.IMAGE_TOO_LARGE)

    with pytest.raises(InvalidInput, match="too big for this caller"):
        backend.storage.read(PLAIN, key, max_bytes=1000, check_size=refuse)
    assert seen == [64]


def test_a_missing_object_or_another_etag_reads_as_gone(backend: Backend) -> None:
    key = _key("cat.jpg")
    with pytest.raises(ObjectGone):
        backend.storage.read(PLAIN, key, max_bytes=100)
    backend.put(PLAIN, key, b"first", {})
    info, _ = backend.storage.read(PLAIN, key, max_bytes=100)
    backend.put(PLAIN, key, b"second upload", {})  # overwritten since the event: another ETag
    with pytest.raises(ObjectGone):
        backend.storage.read(PLAIN, key, max_bytes=100, etag=info.etag)


# --- version ids ------------------------------------------------------------------------------------


def test_an_unversioned_bucket_reads_with_no_version_id(backend: Backend) -> None:
    key = _key("cat.jpg")
    assert backend.put(PLAIN, key, b"x", {}) is None
    info, _ = backend.storage.read(PLAIN, key, max_bytes=100)
    assert info.version_id is None


def test_a_versioned_bucket_reads_the_version_asked_for_and_names_it(backend: Backend) -> None:
    key = _key("cat.jpg")
    first = backend.put(VERSIONED, key, b"first", {"n": "1"})
    second = backend.put(VERSIONED, key, b"second", {"n": "2"})
    assert first and second and first != second
    latest, data = backend.storage.read(VERSIONED, key, max_bytes=100)
    assert (latest.version_id, data, latest.metadata) == (second, b"second", {"n": "2"})
    pinned, data = backend.storage.read(VERSIONED, key, max_bytes=100, version_id=first)
    assert (pinned.version_id, data, pinned.metadata) == (first, b"first", {"n": "1"})


def test_a_version_that_is_not_there_reads_as_gone(backend: Backend) -> None:
    key = _key("cat.jpg")
    other_key = _key("dog.jpg")
    backend.put(VERSIONED, key, b"cat", {})
    elsewhere = backend.put(VERSIONED, other_key, b"dog", {})  # a well-formed version id, of another object
    assert elsewhere is not None
    with pytest.raises(ObjectGone):
        backend.storage.read(VERSIONED, key, max_bytes=100, version_id=elsewhere)


def test_the_current_object_of_a_key_is_named_by_its_etag_and_version(backend: Backend) -> None:
    """HeadObject: what a delivery without a sequencer compares its own upload with (the newest upload decides)."""
    key = _key("cat.jpg")
    assert backend.storage.current(VERSIONED, key) is None
    first = backend.put(VERSIONED, key, b"first", {"Prompt": "p"})
    second = backend.put(VERSIONED, key, b"second!", {})
    head = backend.storage.current(VERSIONED, key)
    assert head is not None and (head.version_id, head.size) == (second, 7) and head.version_id != first
    read, _ = backend.storage.read(VERSIONED, key, max_bytes=100)
    assert head.etag == read.etag
    plain = _key("dog.jpg")
    backend.put(PLAIN, plain, b"dog", {"Prompt": "p"})
    head = backend.storage.current(PLAIN, plain)
    assert head is not None and head.version_id is None and head.metadata == {"prompt": "p"}
    backend.storage.delete(PLAIN, plain)
    assert backend.storage.current(PLAIN, plain) is None


def test_a_head_names_the_announced_objects_metadata_without_its_body(backend: Backend) -> None:
    """HeadObject pinned as a read is: how the submit function learns a plain image's `takes` metadata."""
    key = _key("cat.jpg")
    first = backend.put(VERSIONED, key, b"first", {"Takes": "3", "prompt": "p"})
    second = backend.put(VERSIONED, key, b"second!", {})
    assert first and second
    pinned = backend.storage.head(VERSIONED, key, version_id=first)
    assert (pinned.version_id, pinned.size, pinned.metadata) == (first, 5, {"takes": "3", "prompt": "p"})
    assert backend.storage.head(VERSIONED, key).metadata == {}  # unpinned: the current object
    plain = _key("dog.jpg")
    backend.put(PLAIN, plain, b"dog", {"takes": "2"})
    info = backend.storage.head(PLAIN, plain)
    assert info.metadata == {"takes": "2"} and info.etag
    assert backend.storage.head(PLAIN, plain, etag=info.etag).size == 3
    backend.put(PLAIN, plain, b"dog again", {})  # overwritten since the event: another ETag
    with pytest.raises(ObjectGone):
        backend.storage.head(PLAIN, plain, etag=info.etag)
    with pytest.raises(ObjectGone):
        backend.storage.head(PLAIN, _key("missing.jpg"))


def test_the_head_of_an_object_is_its_first_bytes_and_its_whole_size(backend: Backend) -> None:
    """A reference video's kind and size from one ranged read: the first bytes, the size of the whole object."""
    key = _key("move.mp4")
    body = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    backend.put(PLAIN, key, body, {})
    assert backend.storage.read_head(PLAIN, key, length=16) == (len(body), body[:16])
    short = _key("tiny.wav")
    backend.put(PLAIN, short, b"RIFF", {})
    assert backend.storage.read_head(PLAIN, short, length=64) == (4, b"RIFF")
    empty = _key("empty.mp3")
    backend.put(PLAIN, empty, b"", {})
    assert backend.storage.read_head(PLAIN, empty, length=64) == (0, b"")
    with pytest.raises(ObjectGone):
        backend.storage.read_head(PLAIN, _key("missing.mp4"), length=64)


# --- results and sidecars ---------------------------------------------------------------------------


def test_a_streamed_result_reads_back_whole(backend: Backend) -> None:
    key = _key("out.mp4")
    body = bytes(range(256)) * 40
    backend.storage.upload_stream(io.BytesIO(body), PLAIN, key, content_type="video/mp4")
    info, data = backend.storage.read(PLAIN, key, max_bytes=len(body))
    assert data == body and info.size == len(body)


def test_a_sidecar_reads_back_as_written(backend: Backend) -> None:
    key = _key("cat.jpg.json")
    document: dict[str, Any] = {"job_id": "j-1", "prompt": "镜头缓慢推进", "outputs": {"video": "videos/cat.mp4"}}
    backend.storage.put_json(PLAIN, key, document)
    assert backend.storage.read_json(PLAIN, key) == document


def test_a_sidecar_someone_else_wrote_is_read_like_ours(backend: Backend) -> None:
    key = _key("cat.jpg.json")
    backend.put(PLAIN, key, json.dumps({"job_id": "j-old"}).encode(), {})
    assert backend.storage.read_json(PLAIN, key) == {"job_id": "j-old"}


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"", b"\xff\xfe{", b'["a", "list"]', b'"a string"', b"null", b'{"cut": '],
    ids=["text", "empty", "not-utf8", "list", "string", "null", "cut"],
)
def test_a_sidecar_that_is_not_a_json_object_reads_as_none(backend: Backend, body: bytes) -> None:
    key = _key("cat.jpg.json")
    backend.put(PLAIN, key, body, {})
    assert backend.storage.read_json(PLAIN, key) is None


def test_a_sidecar_switch_lands_only_on_the_sidecar_it_read(backend: Backend) -> None:
    """Two deliveries of one key that both read its sidecar before either wrote: only the first switch lands; the
    second, conditional on what it read, writes nothing and reads the winner's sidecar next."""
    key = _key("cat.jpg.json")
    document, absent = backend.storage.read_json_tagged(PLAIN, key)
    assert document is None and absent is None
    assert backend.storage.replace_json(PLAIN, key, {"job_id": "j-new"}, etag=absent)
    assert not backend.storage.replace_json(PLAIN, key, {"job_id": "j-old"}, etag=absent)
    document, etag = backend.storage.read_json_tagged(PLAIN, key)
    assert document == {"job_id": "j-new"} and etag
    assert backend.storage.replace_json(PLAIN, key, {"job_id": "j-newer"}, etag=etag)
    assert not backend.storage.replace_json(PLAIN, key, {"job_id": "j-old"}, etag=etag)
    assert backend.storage.read_json(PLAIN, key) == {"job_id": "j-newer"}
    backend.storage.delete(PLAIN, key)
    assert not backend.storage.replace_json(PLAIN, key, {"job_id": "j-old"}, etag=etag)
    assert backend.storage.read_json(PLAIN, key) is None


def test_a_missing_sidecar_reads_as_none_and_deleting_it_again_is_harmless(backend: Backend) -> None:
    key = _key("cat.jpg.json")
    assert backend.storage.read_json(PLAIN, key) is None
    backend.storage.put_json(PLAIN, key, {"job_id": "j-1"})
    backend.storage.delete(PLAIN, key)
    assert backend.storage.read_json(PLAIN, key) is None
    backend.storage.delete(PLAIN, key)
    with pytest.raises(ObjectGone):
        backend.storage.read(PLAIN, key, max_bytes=100)
