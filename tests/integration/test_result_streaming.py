"""Videos stream from the provider into S3 in parts: never held whole, never half-visible."""

from __future__ import annotations

import hashlib

import pytest

from seedance_pipeline.adapters.result_download import ResultDownloader
from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest multipart part


def patterned_body(size: int, chunk: int = 256 * 1024):
    """A deterministic body generated lazily, so the simulator never holds it either."""

    def factory(task):
        def chunks():
            sent = 0
            block = hashlib.sha256(task.task_id.encode()).digest() * (chunk // 32)
            while sent < size:
                piece = block[: min(chunk, size - sent)]
                sent += len(piece)
                yield piece

        return size, chunks()

    return factory


def expected_digest(task_id: str, size: int, chunk: int = 256 * 1024) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(task_id.encode()).digest() * (chunk // 32)
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        digest.update(piece)
        sent += len(piece)
    return digest.hexdigest()


@pytest.fixture
def read_sizes(monkeypatch):
    """Spy on the real download stream: record every read the multipart upload makes."""
    sizes: list[int] = []
    real_open = ResultDownloader.open

    def spying_open(self, url, **options):
        stream = real_open(self, url, **options)
        real_read = stream.read

        def read(size=-1):
            chunk = real_read(size)
            sizes.append(len(chunk))
            return chunk

        monkeypatch.setattr(stream, "read", read)
        return stream

    monkeypatch.setattr(ResultDownloader, "open", spying_open)
    return sizes


def test_a_video_several_parts_long_is_streamed_in_parts(make_pipeline, sim, stack, read_sizes):
    size = 5 * PART + 123_457
    sim.knobs.video_body_factory = patterned_body(size)
    pipeline = make_pipeline(MULTIPART_CHUNK_BYTES=str(PART), MULTIPART_CONCURRENCY="2")
    pipeline.submit(pipeline.upload("uploads/big.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=120)["uploads/big.jpg"]
    assert job.status is JobStatus.SUCCEEDED, job.error

    s3 = stack.client("s3")
    head = s3.head_object(Bucket=stack.bucket, Key=job.outputs.video_key, PartNumber=1)
    assert head["PartsCount"] == 6
    body = s3.get_object(Bucket=stack.bucket, Key=job.outputs.video_key)["Body"].read()
    assert len(body) == size
    assert hashlib.sha256(body).hexdigest() == expected_digest(job.task_id, size)
    assert max(read_sizes) <= PART, "a read larger than one part means the video was pulled whole"
    assert sum(read_sizes) == size


def test_a_video_over_the_size_cap_is_refused_and_leaves_no_object(make_pipeline, sim, stack):
    sim.knobs.video_body_factory = patterned_body(3 * PART)
    pipeline = make_pipeline(MULTIPART_CHUNK_BYTES=str(PART), MAX_VIDEO_BYTES=str(2 * PART))
    pipeline.submit(pipeline.upload("uploads/huge.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=120)["uploads/huge.jpg"]
    assert job.status is JobStatus.FAILED
    assert job.error.code == "DOWNLOAD_REFUSED" and "cap" in job.error.message
    listed = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix="videos/")
    assert listed.get("KeyCount", 0) == 0
    assert not stack.client("s3").list_multipart_uploads(Bucket=stack.bucket).get("Uploads")
