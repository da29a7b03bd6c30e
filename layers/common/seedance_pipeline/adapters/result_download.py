"""Follow a provider's result URL safely: https to public addresses only, every redirect re-checked, size capped.

The stream it returns is read by boto3's multipart upload a part at a time, so a video never sits whole in
memory. Each hop is checked, then the connection dials exactly the addresses that were checked (pinned), while
TLS still verifies the certificate and sends SNI for the host name. So neither a URL that two parsers read
differently nor a DNS answer that changes between check and connect (rebinding) can steer the request to an
address the check did not judge. Each download also has an overall deadline: a body trickling in just under
the read timeout cannot outlive the Lambda.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection
from urllib3.util.retry import Retry

from seedance_pipeline.adapters.url_safety import host_key, is_public, refuse_ambiguous, resolve_host
from seedance_pipeline.errors import DownloadRefused, ResultExpired, ResultUnavailable

MAX_REDIRECTS = 5
# Poll runs have 300 s; a caller that passes no deadline still cannot hang a run on one slow body.
DEFAULT_DOWNLOAD_SECONDS = 240.0
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_EXPIRED_CODES = {403, 404, 410}

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    addresses: tuple[str, ...] | None  # None: private downloads allowed, dial as the client would


class _Deadline:
    """One download's time budget. When it runs out, the sockets the download uses are shut down, so a read
    blocked on a trickling body returns at once instead of waiting out each read timeout again and again."""

    def __init__(self, at: float, url_for_errors: str) -> None:
        self.at = at
        self._url = url_for_errors
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._timer: threading.Timer | None = None
        self._fired = False
        self._closed = False

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self._fired or self.remaining() <= 0

    def out_of_time(self) -> ResultUnavailable:
        return ResultUnavailable(f"the download from {self._url} ran out of time before the result was complete")

    def check(self) -> None:
        if self.expired():
            raise self.out_of_time()

    def watch(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self._closed:
                return
            if conn not in self._connections:
                self._connections.append(conn)
            if self._timer is None:
                self._timer = threading.Timer(max(0.0, self.remaining()), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._fired = True
            connections = list(self._connections)
        for conn in connections:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop its state under
                # a reader blocked in another thread.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._connections.clear()
            if self._timer is not None:
                self._timer.cancel()


@dataclass(frozen=True)
class _Hop:
    target: _Target
    deadline: _Deadline


# The hop being requested right now, seen by the connection classes below: requests gives its transport no
# way to carry per-request data, and the connection is made in the requesting thread.
_current_hop: contextvars.ContextVar[_Hop | None] = contextvars.ContextVar("seedance_download_hop", default=None)


def _dial(conn: HTTPConnection, dial_as_usual: Callable[[], socket.socket]) -> socket.socket:
    hop = _current_hop.get()
    if hop is None:
        raise DownloadRefused("refusing a download connection that was not checked first")
    target = hop.target
    if (host_key(conn.host), conn.port) != (host_key(target.host), target.port):
        raise DownloadRefused(f"refusing to connect to {conn.host}: the address check judged {target.host}")
    hop.deadline.watch(conn)
    if target.addresses is None:
        return dial_as_usual()
    failure: Exception | None = None
    for address in target.addresses:
        try:
            return connection.create_connection(
                (address, target.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            failure = ConnectTimeoutError(conn, f"Connection to {conn.host} timed out (connect timeout {conn.timeout})")
            failure.__cause__ = exc
        except OSError as exc:
            failure = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
            failure.__cause__ = exc
    assert failure is not None  # a checked target always has at least one address
    raise failure


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        hop = _current_hop.get()
        if hop is not None:  # a kept-alive connection is reused without a new dial: it still needs the watchdog
            hop.deadline.watch(self)
        super().request(*args, **kwargs)


class _PinnedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:
        hop = _current_hop.get()
        if hop is not None:
            hop.deadline.watch(self)
        super().request(*args, **kwargs)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}


class LimitedStream:
    """File-like reader over a response body that refuses to go past a byte cap or the download's deadline."""

    def __init__(
        self, response: requests.Response, max_bytes: int, url_for_errors: str, deadline: _Deadline | None = None
    ) -> None:
        self._response = response
        self._raw = response.raw
        self._max = max_bytes
        self._url = url_for_errors
        self._deadline = deadline or _Deadline(time.monotonic() + DEFAULT_DOWNLOAD_SECONDS, url_for_errors)
        self.bytes_read = 0
        self.content_length = _int_or_none(response.headers.get("Content-Length"))

    def read(self, size: int = -1) -> bytes:
        self._deadline.check()
        want = self._max + 1 - self.bytes_read if size is None or size < 0 else size
        try:
            chunk: bytes = self._raw.read(want, decode_content=True)
        except Exception as exc:  # urllib3/socket errors mid-body: a network fault, not a bad result
            if self._deadline.expired():
                raise self._deadline.out_of_time() from exc
            raise ResultUnavailable(f"the download from {self._url} broke off: {type(exc).__name__}") from exc
        # Checked after the read too: the deadline's socket shutdown can look like a clean end of the body.
        self._deadline.check()
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max:
            raise DownloadRefused(f"the result at {self._url} is larger than the {self._max} byte cap")
        return chunk

    def close(self) -> None:
        self._deadline.close()
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
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._resolve = resolver
        self._session = session or _download_session()

    def check_url(self, url: str) -> None:
        self._check(url)

    def _check(self, url: str) -> _Target:
        allowed_schemes = {"https", "http"} if self._allow_private else {"https"}
        _, host, port = refuse_ambiguous(url, allowed_schemes)
        if self._allow_private:
            return _Target(host, port, None)
        addresses = self._resolve(host, port)
        if not addresses:
            raise ResultUnavailable(f"{host} has no address")
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise DownloadRefused(
                f"refusing to download from {host}: it resolves to a non-public address ({private[0]})"
            )
        return _Target(host, port, tuple(addresses))

    def open(self, url: str, *, max_bytes: int, deadline: float | None = None) -> LimitedStream:
        """`deadline` is a time.monotonic() value by which the whole download (every hop and the body) must be
        done; without one, the download gets DEFAULT_DOWNLOAD_SECONDS from now."""
        budget = _Deadline(
            deadline if deadline is not None else time.monotonic() + DEFAULT_DOWNLOAD_SECONDS, _redact(url)
        )
        try:
            return self._follow(url, max_bytes, budget)
        except BaseException:
            budget.close()
            raise

    def _follow(self, url: str, max_bytes: int, budget: _Deadline) -> LimitedStream:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            target = self._check(current)
            budget.check()
            remaining = budget.remaining()
            timeout = (min(self._connect_timeout, remaining), min(self._read_timeout, remaining))
            token = _current_hop.set(_Hop(target, budget))
            try:
                response = self._session.get(current, stream=True, timeout=timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                if budget.expired():
                    raise budget.out_of_time() from exc
                raise ResultUnavailable(f"could not fetch the result: {type(exc).__name__}") from exc
            finally:
                _current_hop.reset(token)
            if budget.expired():  # the deadline's shutdown can end a trickled header block early, not loudly
                response.close()
                raise budget.out_of_time()
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
            stream = LimitedStream(response, max_bytes, _redact(current), budget)
            if stream.content_length is not None and stream.content_length > max_bytes:
                stream.close()
                raise DownloadRefused(f"the result is {stream.content_length} bytes, over the {max_bytes} byte cap")
            return stream
        raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")


def _download_session() -> requests.Session:
    session = requests.Session()
    # No proxies or .netrc from the environment: a proxy would make the connection go somewhere the address
    # check never judged.
    session.trust_env = False
    retry = Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.5, allowed_methods={"GET"})
    adapter = _PinnedAdapter(max_retries=retry, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _redact(url: str) -> str:
    """Result URLs carry signatures; logs and errors get the address without the query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the result URL"  # unparseable: the check refuses it, and its text may hold a signature
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
