"""ResultDownloader over an in-memory transport: every redirect hop is re-checked before it is requested.

No network: a requests.Session with a fake adapter that answers from a table of canned responses and records
every request it is asked to send, and a fake resolver that maps host names to addresses.
"""

from __future__ import annotations

import io
import ipaddress
import itertools
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.response import HTTPResponse

from seedance_pipeline.adapters.result_download import MAX_REDIRECTS, ResultDownloader
from seedance_pipeline.errors import DownloadRefused, ResultExpired, ResultUnavailable

PUBLIC = "93.184.216.34"
START = "https://cdn.example.com/results/task.mp4?X-Signature=abc"
BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64

HOSTS = {
    "cdn.example.com": [PUBLIC],
    "edge1.example.net": [PUBLIC],
    "edge2.example.net": [PUBLIC],
    "edge3.example.net": ["2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.0.0.5"],
    "sneaky.example.com": [PUBLIC, "10.0.0.5"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]  # an IP literal resolves to itself, as getaddrinfo does
    except ValueError:
        return list(HOSTS[host])


class Canned:
    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def redirect(location: str, status: int = 302) -> Canned:
    return Canned(status, b"", {"Location": location, "Content-Length": "0"})


def ok(body: bytes = BODY, *, content_length: bool = True) -> Canned:
    headers = {"Content-Type": "video/mp4"}
    if content_length:
        headers["Content-Length"] = str(len(body))
    return Canned(200, body, headers)


class RecordingAdapter(BaseAdapter):
    """Answers each URL from `routes`; any URL not in the table is a test failure, not a 404."""

    def __init__(self, routes: dict[str, Canned]) -> None:
        super().__init__()
        self.routes = routes
        self.sent: list[str] = []
        self.closed_bodies = 0

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        assert request.url is not None
        self.sent.append(request.url)
        canned = self.routes.get(request.url)
        if canned is None:
            raise AssertionError(f"the downloader requested an unexpected URL: {request.url}")
        raw = HTTPResponse(
            body=io.BytesIO(canned.body),
            headers=canned.headers,
            status=canned.status,
            preload_content=False,
            decode_content=False,
        )
        response = requests.Response()
        response.status_code = canned.status
        response.headers = CaseInsensitiveDict(canned.headers)
        response.raw = raw
        response.url = request.url
        response.request = request
        response.reason = "canned"
        return response

    def close(self) -> None:
        return None


def make_downloader(routes: dict[str, Canned]) -> tuple[ResultDownloader, RecordingAdapter]:
    adapter = RecordingAdapter(routes)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return ResultDownloader(allow_private=False, resolver=fake_resolver, session=session), adapter


def read_all(stream: Any, chunk: int = 4096) -> bytes:
    parts: list[bytes] = []
    while True:
        piece = stream.read(chunk)
        if not piece:
            return b"".join(parts)
        parts.append(piece)


# --- redirects to places the downloader must not go --------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "refusal"),
    [
        ("https://169.254.169.254/latest/meta-data/", "non-public address (169.254.169.254)"),
        ("http://cdn.example.com/results/task.mp4", "only https is allowed"),
        ("https://internal.example.com/results/task.mp4", "non-public address (10.0.0.5)"),
        ("https://sneaky.example.com/results/task.mp4", "non-public address (10.0.0.5)"),
        ("https://[::1]/results/task.mp4", "non-public address (::1)"),
        ("file:///etc/passwd", "only https is allowed"),
    ],
    ids=["metadata-service", "plain-http", "private-host", "one-private-address", "ipv6-loopback", "file-scheme"],
)
def test_a_redirect_to_a_forbidden_target_is_refused_before_it_is_requested(location, refusal):
    downloader, adapter = make_downloader({START: redirect(location), location: ok()})

    with pytest.raises(DownloadRefused, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        downloader.open(START, max_bytes=10 * len(BODY))

    assert adapter.sent == [START]  # the forbidden hop was never sent


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_rechecked(status):
    target = "https://169.254.169.254/latest/meta-data/iam/security-credentials/"
    downloader, adapter = make_downloader({START: redirect(target, status), target: ok(b"secret")})

    with pytest.raises(DownloadRefused, match="non-public address"):
        downloader.open(START, max_bytes=1024)

    assert adapter.sent == [START]


def test_a_forbidden_hop_deep_in_a_public_chain_is_refused_and_never_sent():
    hop1, hop2 = "https://edge1.example.net/a", "https://edge2.example.net/b"
    bad = "https://internal.example.com/c"
    downloader, adapter = make_downloader({START: redirect(hop1), hop1: redirect(hop2), hop2: redirect(bad), bad: ok()})

    with pytest.raises(DownloadRefused, match=r"10\.0\.0\.5"):
        downloader.open(START, max_bytes=10 * len(BODY))

    assert adapter.sent == [START, hop1, hop2]


def test_a_redirect_chain_longer_than_five_is_refused():
    hops = [f"https://edge1.example.net/hop/{n}" for n in range(MAX_REDIRECTS + 1)]
    routes = {START: redirect(hops[0])}
    for here, there in itertools.pairwise(hops):
        routes[here] = redirect(there)
    routes[hops[-1]] = ok()  # the 6th redirect's target: would be a 200, but must never be asked for
    downloader, adapter = make_downloader(routes)

    with pytest.raises(DownloadRefused, match="redirects"):
        downloader.open(START, max_bytes=10 * len(BODY))

    assert len(adapter.sent) == MAX_REDIRECTS + 1  # the start URL and five redirect targets, nothing more
    assert hops[-1] not in adapter.sent


def test_a_redirect_loop_is_refused_after_five_hops():
    loop = "https://edge1.example.net/loop"
    downloader, adapter = make_downloader({START: redirect(loop), loop: redirect(START)})

    with pytest.raises(DownloadRefused, match="redirects"):
        downloader.open(START, max_bytes=1024)

    assert len(adapter.sent) == MAX_REDIRECTS + 1


def test_a_chain_of_exactly_five_public_redirects_is_followed():
    hops = [f"https://edge2.example.net/hop/{n}" for n in range(MAX_REDIRECTS)]
    routes = {START: redirect(hops[0])}
    for here, there in itertools.pairwise(hops):
        routes[here] = redirect(there)
    routes[hops[-1]] = ok()
    downloader, adapter = make_downloader(routes)

    with downloader.open(START, max_bytes=10 * len(BODY)) as stream:
        assert read_all(stream) == BODY

    assert adapter.sent == [START, *hops]


def test_a_chain_of_public_redirects_ending_in_200_returns_the_body():
    hop1 = "https://edge1.example.net/signed/task.mp4?sig=1"
    hop2 = "/final/task.mp4"  # a relative Location, resolved against the current URL
    final = "https://edge1.example.net/final/task.mp4"
    hop3 = "https://edge3.example.net/task.mp4"
    routes = {START: redirect(hop1, 301), hop1: redirect(hop2, 307), final: redirect(hop3, 308), hop3: ok()}
    downloader, adapter = make_downloader(routes)

    with downloader.open(START, max_bytes=len(BODY)) as stream:
        assert stream.content_length == len(BODY)
        assert read_all(stream, chunk=1000) == BODY
        assert stream.bytes_read == len(BODY)

    assert adapter.sent == [START, hop1, final, hop3]


# --- size cap ------------------------------------------------------------------------------------------------------


def test_a_body_over_the_cap_without_content_length_is_refused_while_reading():
    downloader, _ = make_downloader({START: ok(BODY, content_length=False)})
    cap = len(BODY) // 2

    stream = downloader.open(START, max_bytes=cap)  # nothing announced, so nothing to refuse yet
    assert stream.content_length is None
    with pytest.raises(DownloadRefused, match=f"larger than the {cap} byte cap"):
        read_all(stream, chunk=1000)
    assert stream.bytes_read > cap
    stream.close()


def test_a_read_of_everything_stops_one_byte_past_the_cap():
    downloader, _ = make_downloader({START: ok(BODY, content_length=False)})

    stream = downloader.open(START, max_bytes=100)
    with pytest.raises(DownloadRefused, match="byte cap"):
        stream.read()
    assert stream.bytes_read == 101  # never pulls the rest of an oversized body into memory


def test_a_body_exactly_at_the_cap_is_accepted():
    downloader, _ = make_downloader({START: ok(BODY, content_length=False)})

    with downloader.open(START, max_bytes=len(BODY)) as stream:
        assert read_all(stream, chunk=777) == BODY


def test_an_announced_length_over_the_cap_is_refused_before_reading():
    downloader, _ = make_downloader({START: ok(BODY)})

    with pytest.raises(DownloadRefused, match=f"{len(BODY)} bytes, over the 100 byte cap"):
        downloader.open(START, max_bytes=100)


def test_the_cap_applies_after_redirects_too():
    hop = "https://edge1.example.net/big"
    downloader, _ = make_downloader({START: redirect(hop), hop: ok(BODY, content_length=False)})

    stream = downloader.open(START, max_bytes=1000)
    with pytest.raises(DownloadRefused, match="byte cap"):
        read_all(stream)


# --- error statuses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_gone_result_url_is_reported_expired(status):
    downloader, _ = make_downloader({START: Canned(status, b"<Error><Code>AccessDenied</Code></Error>")})

    with pytest.raises(ResultExpired, match=f"HTTP {status}"):
        downloader.open(START, max_bytes=1024)


def test_an_expired_url_after_a_redirect_is_reported_expired():
    hop = "https://edge1.example.net/expired"
    downloader, adapter = make_downloader({START: redirect(hop), hop: Canned(403, b"")})

    with pytest.raises(ResultExpired):
        downloader.open(START, max_bytes=1024)
    assert adapter.sent == [START, hop]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_reported_unavailable(status):
    downloader, _ = make_downloader({START: Canned(status, b"oops")})

    with pytest.raises(ResultUnavailable, match=f"HTTP {status}"):
        downloader.open(START, max_bytes=1024)


def test_a_refused_download_never_names_the_signed_query_string():
    downloader, _ = make_downloader({START: ok(BODY, content_length=False)})

    stream = downloader.open(START, max_bytes=10)
    with pytest.raises(DownloadRefused) as caught:
        read_all(stream)
    assert "X-Signature" not in caught.value.message
    assert "cdn.example.com/results/task.mp4" in caught.value.message


def test_a_redirect_without_a_location_is_not_taken_for_the_result():
    downloader, _ = make_downloader({START: Canned(302, b"<html>moved</html>", {"Content-Length": "18"})})

    with pytest.raises((ResultUnavailable, DownloadRefused)):
        downloader.open(START, max_bytes=1024)
