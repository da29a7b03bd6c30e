"""The downloader's own transport dials exactly the addresses the check judged, for the host the check judged.

No network: urllib3's create_connection is replaced by a recorder that notes the dialed address and stops the
request there (or hands back one end of a socketpair, to see what TLS sends).
"""

from __future__ import annotations

import socket
import threading

import pytest
import urllib3.util.connection

from seedance_pipeline.adapters.result_download import ResultDownloader
from seedance_pipeline.adapters.url_safety import is_public
from seedance_pipeline.errors import DownloadRefused, ResultUnavailable

PUBLIC = "93.184.216.34"


class Dialed(Exception):
    """Raised by the recording dialer: the request got as far as opening a socket to `address`."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address)
        self.address = address


@pytest.fixture
def dialed(monkeypatch):
    addresses: list[tuple[str, int]] = []

    def record(address, *args, **kwargs):
        addresses.append(address)
        raise Dialed(address)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", record)
    return addresses


def test_the_backslash_userinfo_trick_is_refused_before_anything_is_dialed(dialed):
    # urlsplit reads the host as public.example; urllib3, and so requests, connect to 127.0.0.1:8443.
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC])

    with pytest.raises(DownloadRefused, match="backslashes"):
        downloader.open("https://127.0.0.1:8443\\@public.example/v.mp4", max_bytes=1024)

    assert dialed == []


def test_the_connection_goes_to_the_address_that_was_checked(dialed):
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC])

    with pytest.raises(Dialed):
        downloader.open("https://cdn.example.com/results/v.mp4", max_bytes=1024)

    assert dialed == [(PUBLIC, 443)]  # the IP, never the name for a second, unchecked lookup


def test_a_dns_answer_that_changes_after_the_check_does_not_reach_the_new_address(dialed):
    answers = iter([[PUBLIC], ["169.254.169.254"], ["169.254.169.254"]])
    lookups: list[str] = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    downloader = ResultDownloader(allow_private=False, resolver=rebinding_resolver)

    with pytest.raises(Dialed):
        downloader.open("https://rebind.example.com/v.mp4", max_bytes=1024)

    assert lookups == ["rebind.example.com"]
    assert dialed == [(PUBLIC, 443)]


def test_a_second_address_is_tried_when_the_first_will_not_connect(monkeypatch):
    tried: list[str] = []

    def refuse_first(address, *args, **kwargs):
        tried.append(address[0])
        if address[0] == PUBLIC:
            raise ConnectionRefusedError("no")
        raise Dialed(address)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse_first)
    other = "2606:2800:220:1:248:1893:25c8:1946"
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC, other])

    with pytest.raises(Dialed):
        downloader.open("https://cdn.example.com/v.mp4", max_bytes=1024)

    assert tried == [PUBLIC, other]


def test_the_download_session_refuses_a_connection_nobody_checked(dialed):
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC])

    with pytest.raises(DownloadRefused, match="not checked"):
        downloader._session.get("https://169.254.169.254/latest/meta-data/", timeout=1)

    assert dialed == []


def test_tls_to_the_pinned_address_still_names_the_host_for_sni(monkeypatch):
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(urllib3.util.connection, "create_connection", lambda address, *a, **k: ours)
    hello = bytearray()

    def read_client_hello() -> None:
        hello.extend(theirs.recv(65536))
        theirs.close()  # no server answer: the handshake fails after the ClientHello went out

    reader = threading.Thread(target=read_client_hello)
    reader.start()
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC])

    with pytest.raises(ResultUnavailable):
        downloader.open("https://cdn.example.com/v.mp4", max_bytes=1024)
    reader.join(timeout=5)

    assert hello[:1] == b"\x16"  # a TLS handshake record
    assert b"cdn.example.com" in hello  # the server_name extension carries the name, not the IP


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
        ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
        ("64:ff9b::a00:5", "NAT64 of 10.0.0.5"),
        ("64:ff9b:1::a00:5", "local-use NAT64"),
        ("fec0::1", "site-local"),
        ("::7f00:1", "IPv4-compatible 127.0.0.1"),
        ("::5db8:d822", "IPv4-compatible of a public IPv4"),
        ("2001::1", "Teredo"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo with a client"),
        ("::ffff:0:7f00:1", "IPv4-translated 127.0.0.1"),
        ("::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254"),
    ],
)
def test_ipv6_forms_that_reach_non_public_ipv4_are_refused(address, why):
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [address])

    with pytest.raises(DownloadRefused, match="non-public address"):
        downloader.check_url("https://cdn.example.com/v.mp4")


@pytest.mark.parametrize("address", ["2002:5db8:d822::1", "64:ff9b::5db8:d822", "2606:2800:220:1:248:1893:25c8:1946"])
def test_ipv6_forms_of_public_addresses_pass(address):
    assert is_public(address)


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://127.0.0.1:8443\\@public.example/v.mp4", "backslashes"),
        ("https://public.example\\@127.0.0.1/v.mp4", "backslashes"),
        ("https://user:pw@cdn.example.com/v.mp4", "credentials"),
        ("https://cdn.example.com@127.0.0.1/v.mp4", "credentials"),
        ("https://cdn.exa\tmple.com/v.mp4", "whitespace"),
        ("https://cdn.example.com\n.evil/v.mp4", "whitespace"),
        (" https://cdn.example.com/v.mp4", "whitespace"),
        ("https://cdn.example.com%2f@127.0.0.1/v.mp4", "credentials"),
        ("https://127.0.0.%31/v.mp4", "read differently"),
        ("https://ex\u00e4mple.com/v.mp4", "non-ASCII"),
        ("https://\uff11\uff12\uff17.0.0.1/v.mp4", "non-ASCII"),  # fullwidth digits: NFKC turns them into 127
        ("https://127.1/v.mp4", "non-canonical IPv4"),
        ("https://2130706433/v.mp4", "non-canonical IPv4"),
        ("https://0x7f.0.0.1/v.mp4", "non-canonical IPv4"),
        ("https://0177.0.0.1/v.mp4", "non-canonical IPv4"),
        ("https://[fe80::1%25eth0]/v.mp4", "read differently|zone"),
        ("https://cdn.example.com:0/v.mp4", "port 0"),
        ("https://cdn.example.com:99999/v.mp4", "does not parse"),
        ("https://[::1/v.mp4", "does not parse"),
        ("https://[\\::1]/v.mp4", "backslashes"),
        ("https://[v1.127.0.0.1]/v.mp4", "does not parse"),
    ],
)
def test_urls_that_parsers_read_differently_are_refused(url, refusal):
    downloader = ResultDownloader(allow_private=False, resolver=lambda host, port: [PUBLIC])

    with pytest.raises(DownloadRefused, match=refusal):
        downloader.check_url(url)


def test_private_downloads_still_reach_a_loopback_http_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    downloader = ResultDownloader(allow_private=True)
    try:
        with downloader.open(f"http://127.0.0.1:{port}/results/t.mp4", max_bytes=100) as stream:
            assert stream.read() == b"hello"
    finally:
        thread.join(timeout=5)
        server.close()
