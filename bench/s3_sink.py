"""A loopback S3 endpoint that keeps small objects and counts, then drops, the bytes of large ones.

Figure 8 moves 32 videos of 256 MiB through one poll invocation. moto would hold all 8 GiB (twice, while it joins
multipart parts), which is a benchmark of moto's memory, not of ours; the measured process is the poller, and what
it sends is the same whatever keeps it. This endpoint speaks the part of the S3 REST API the pipeline's delivery
uses (PutObject, the multipart calls, GetObject/HeadObject, DeleteObject), path-style, and checks what matters:
every part of a completed upload arrived, and the sizes add up.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

KEEP_BYTES = 1024 * 1024  # sidecars and images are kept whole; media bodies only counted
_READ_CHUNK = 1024 * 1024


@dataclass
class SinkObject:
    size: int
    body: bytes | None
    content_type: str
    metadata: dict[str, str]


@dataclass
class _Upload:
    bucket: str
    key: str
    content_type: str
    parts: dict[int, int] = field(default_factory=dict)  # part number -> bytes


class S3Sink:
    """`with S3Sink() as sink:` then point S3 clients at `sink.endpoint` (AWS_ENDPOINT_URL_S3)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], SinkObject] = {}
        self.bytes_received = 0
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(_SinkHandler):
            owner = sink

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> S3Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sizes(self, bucket: str, suffix: str) -> list[int]:
        with self._lock:
            return [o.size for (b, k), o in self.objects.items() if b == bucket and k.endswith(suffix)]


class _SinkHandler(BaseHTTPRequestHandler):
    owner: S3Sink
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return bucket, unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def _read_body(self, keep: bool) -> tuple[int, bytes | None]:
        """The payload's size (decoded, for aws-chunked bodies) and, when small and wanted, its bytes."""
        length = int(self.headers.get("Content-Length") or 0)
        decoded = self.headers.get("x-amz-decoded-content-length")
        chunks: list[bytes] = []
        left = length
        while left > 0:
            piece = self.rfile.read(min(_READ_CHUNK, left))
            if not piece:
                break
            left -= len(piece)
            if keep and length <= KEEP_BYTES:
                chunks.append(piece)
        size = int(decoded) if decoded is not None else length
        with self.owner._lock:
            self.owner.bytes_received += size
        if not keep or length > KEEP_BYTES:
            return size, None
        body = b"".join(chunks)
        return size, _decode_aws_chunked(body) if decoded is not None else body

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self) -> None:
        self._reply(404, b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>", _XML)

    def do_PUT(self) -> None:
        bucket, key, query = self._target()
        if "uploadId" in query:
            size, _ = self._read_body(keep=False)
            with self.owner._lock:
                upload = self.owner._uploads.get(query["uploadId"][0])
                if upload is not None:
                    upload.parts[int(query["partNumber"][0])] = size
            if upload is None:
                self._reply(404, b"<Error><Code>NoSuchUpload</Code></Error>", _XML)
                return
            self._reply(200, headers={"ETag": f'"{uuid.uuid4().hex}"'})
            return
        size, body = self._read_body(keep=True)
        metadata = {k[11:]: v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")}
        content_type = self.headers.get("Content-Type", "binary/octet-stream")
        with self.owner._lock:
            self.owner.objects[(bucket, key)] = SinkObject(size, body, content_type, metadata)
        self._reply(200, headers={"ETag": f'"{hashlib.md5(body or b"", usedforsecurity=False).hexdigest()}"'})

    def do_POST(self) -> None:
        bucket, key, query = self._target()
        self._read_body(keep=False)
        if "uploads" in query:
            upload_id = uuid.uuid4().hex
            with self.owner._lock:
                self.owner._uploads[upload_id] = _Upload(bucket, key, self.headers.get("Content-Type", ""))
            body = (
                f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
            )
            self._reply(200, body.encode(), _XML)
            return
        with self.owner._lock:
            upload = self.owner._uploads.pop(query.get("uploadId", [""])[0], None)
        if upload is None or not upload.parts or sorted(upload.parts) != list(range(1, len(upload.parts) + 1)):
            self._reply(400, b"<Error><Code>InvalidPart</Code></Error>", _XML)
            return
        with self.owner._lock:
            self.owner.objects[(bucket, key)] = SinkObject(sum(upload.parts.values()), None, upload.content_type, {})
        body = f'<CompleteMultipartUploadResult><Key>{key}</Key><ETag>"{uuid.uuid4().hex}-{len(upload.parts)}"</ETag>'
        self._reply(200, (body + "</CompleteMultipartUploadResult>").encode(), _XML)

    def do_GET(self) -> None:
        bucket, key, _ = self._target()
        with self.owner._lock:
            found = self.owner.objects.get((bucket, key))
        if found is None or found.body is None:
            self._not_found()
            return
        headers = {"Content-Type": found.content_type, "ETag": '"sink"'}
        headers.update({f"x-amz-meta-{k}": v for k, v in found.metadata.items()})
        self._reply(200, found.body, headers)

    def do_HEAD(self) -> None:
        bucket, key, _ = self._target()
        with self.owner._lock:
            found = self.owner.objects.get((bucket, key))
        if found is None:
            self._not_found()
            return
        self.send_response(200)
        self.send_header("Content-Type", found.content_type)
        self.send_header("Content-Length", str(found.size))
        self.end_headers()

    def do_DELETE(self) -> None:
        bucket, key, query = self._target()
        with self.owner._lock:
            if "uploadId" in query:
                self.owner._uploads.pop(query["uploadId"][0], None)
            else:
                self.owner.objects.pop((bucket, key), None)
        self._reply(204)


_XML = {"Content-Type": "application/xml"}


def _decode_aws_chunked(data: bytes) -> bytes:
    """The payload of an aws-chunked body (botocore's flexible checksums): size;ext CRLF data CRLF ... 0 CRLF."""
    out, rest = [], data
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)
