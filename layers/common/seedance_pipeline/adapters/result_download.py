"""Follow a provider's result URL safely: https to public addresses only, every redirect re-checked, size capped.

The stream it returns is read by boto3's multipart upload a part at a time, so a video never sits whole in
memory. The address check happens before each request; a DNS answer that changes between our check and the
connection (rebinding) is outside what this check can see, and the README says so.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from seedance_pipeline.errors import DownloadRefused, ResultExpired, ResultUnavailable

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_EXPIRED_CODES = {403, 404, 410}

Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResultUnavailable(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class LimitedStream:
    """File-like reader over a response body that refuses to go past a byte cap."""

    def __init__(self, response: requests.Response, max_bytes: int, url_for_errors: str) -> None:
        self._response = response
        self._raw = response.raw
        self._max = max_bytes
        self._url = url_for_errors
        self.bytes_read = 0
        self.content_length = _int_or_none(response.headers.get("Content-Length"))

    def read(self, size: int = -1) -> bytes:
        want = self._max + 1 - self.bytes_read if size is None or size < 0 else size
        try:
            chunk: bytes = self._raw.read(want, decode_content=True)
        except Exception as exc:  # urllib3/socket errors mid-body: a network fault, not a bad result
            raise ResultUnavailable(f"the download from {self._url} broke off: {type(exc).__name__}") from exc
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max:
            raise DownloadRefused(f"the result at {self._url} is larger than the {self._max} byte cap")
        return chunk

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> LimitedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResultDownloader:
    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        resolver: Resolver = resolve_host,
        session: requests.Session | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = (connect_timeout, read_timeout)
        self._resolve = resolver
        self._session = session or _download_session()

    def check_url(self, url: str) -> None:
        parts = urlsplit(url)
        allowed_schemes = {"https", "http"} if self._allow_private else {"https"}
        if parts.scheme not in allowed_schemes:
            raise DownloadRefused(f"refusing to download over {parts.scheme or 'no scheme'}: only https is allowed")
        if not parts.hostname:
            raise DownloadRefused("the result URL has no host")
        if self._allow_private:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = self._resolve(parts.hostname, port)
        if not addresses:
            raise ResultUnavailable(f"{parts.hostname} has no address")
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise DownloadRefused(
                f"refusing to download from {parts.hostname}: it resolves to a non-public address ({private[0]})"
            )

    def open(self, url: str, *, max_bytes: int) -> LimitedStream:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            self.check_url(current)
            try:
                response = self._session.get(current, stream=True, timeout=self._timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                raise ResultUnavailable(f"could not fetch the result: {type(exc).__name__}") from exc
            if response.status_code in _REDIRECT_CODES and response.headers.get("Location"):
                response.close()
                current = urljoin(current, response.headers["Location"])
                continue
            if response.status_code in _EXPIRED_CODES:
                response.close()
                raise ResultExpired(
                    f"the provider's result URL answered HTTP {response.status_code}: results are deleted "
                    "about 24 hours after the task finished"
                )
            if response.status_code != 200:
                response.close()
                raise ResultUnavailable(f"the result URL answered HTTP {response.status_code}, not 200")
            stream = LimitedStream(response, max_bytes, _redact(current))
            if stream.content_length is not None and stream.content_length > max_bytes:
                stream.close()
                raise DownloadRefused(f"the result is {stream.content_length} bytes, over the {max_bytes} byte cap")
            return stream
        raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")


def _download_session() -> requests.Session:
    session = requests.Session()
    retry = Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.5, allowed_methods={"GET"})
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _redact(url: str) -> str:
    """Result URLs carry signatures; logs and errors get the address without the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
