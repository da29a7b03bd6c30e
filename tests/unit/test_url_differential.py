"""Generated result URLs: the host the check judges is the host the HTTP client connects to, and nothing that
passes the check dials a non-public address.

The resolver is a fake that answers the way getaddrinfo does (numeric hosts in any inet_aton notation resolve
to themselves, names come from a table); the network is a recorder in place of urllib3's create_connection
that notes the dialed address and stops there. Hosts are drawn from addresses whose public/private nature is
known, written in every notation resolvers accept, and wrapped in the tricks parsers disagree on.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import requests
import urllib3.util.connection
from hypothesis import example, given
from hypothesis import strategies as st

from seedance_pipeline.adapters.result_download import ResultDownloader
from seedance_pipeline.errors import DownloadRefused, ResultUnavailable

PUBLIC_V4 = ["93.184.216.34", "8.8.8.8"]
PRIVATE_V4 = ["127.0.0.1", "10.0.0.5", "169.254.169.254", "192.168.1.1", "0.0.0.0", "100.64.0.1", "172.16.0.5"]
PUBLIC_V6 = ["2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1", "64:ff9b::5db8:d822"]
PRIVATE_V6 = [
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::127.0.0.1",
    "64:ff9b::10.0.0.5",
    "64:ff9b:1::a00:5",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::",
    "fec0::1",
    "2001::1",
    "::ffff:0:127.0.0.1",
]
NAMES = {
    "cdn.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "public.example": ["8.8.8.8"],
    "internal.example.com": ["10.0.0.5"],
    "meta.example.com": ["169.254.169.254"],
    "mixed.example.com": ["93.184.216.34", "10.0.0.5"],
    "loop6.example.com": ["::1"],
    "nat64.example.com": ["64:ff9b::7f00:1"],
}


def getaddrinfo_like(host: str) -> list[str]:
    """What getaddrinfo answers for `host`: numeric forms (any inet_aton notation) are addresses themselves."""
    bare = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(bare.split("%", 1)[0]))]
    except ValueError:
        pass
    try:
        return [socket.inet_ntoa(socket.inet_aton(bare))]
    except (OSError, ValueError):
        pass
    answer = NAMES.get(host.lower().rstrip("."))
    if answer is None:
        raise ResultUnavailable(f"cannot resolve {host}")
    return answer


def reaches_only_public(address: str) -> bool:
    """The test's own judgement, independent of the adapter: an address is public only if it is global and
    does not carry (or stand for) an IPv4 address that is not."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        value = int(ip)
        if ip in ipaddress.ip_network("::ffff:0:0/96") or ip in ipaddress.ip_network("64:ff9b::/96"):
            return reaches_only_public(str(ipaddress.IPv4Address(value & 0xFFFFFFFF)))
        if ip in ipaddress.ip_network("2002::/16"):
            return reaches_only_public(str(ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)))
        for net in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2001::/32", "fec0::/10", "fe80::/10", "fc00::/7"):
            if ip in ipaddress.ip_network(net):
                return False
    return ip.is_global and not ip.is_multicast


# --- how an address can be written in a host --------------------------------------------------------------------


def ipv4_notations(address: str) -> st.SearchStrategy[str]:
    value = int(ipaddress.IPv4Address(address))
    octets = [(value >> shift) & 0xFF for shift in (24, 16, 8, 0)]
    written = [
        address,
        str(value),  # 2130706433
        hex(value),  # 0x7f000001
        "0" + oct(value)[2:],  # 017700000001
        ".".join("0" + oct(o)[2:] for o in octets),  # 0177.0.0.01
        ".".join(hex(o) for o in octets),  # 0x7f.0x0.0x0.0x1
        f"{octets[0]}.{value & 0xFFFFFF}",  # 127.1
        f"{octets[0]}.{octets[1]}.{value & 0xFFFF}",  # 127.0.1
        f"{hex(octets[0])}.{octets[1]}.{octets[2]}.{octets[3]}",  # mixed
        address + ".",
        "0" + address,
    ]
    return st.sampled_from(written)


def ipv6_notations(address: str) -> st.SearchStrategy[str]:
    ip = ipaddress.IPv6Address(address)
    written = [ip.compressed, ip.exploded, ip.compressed.upper()]
    low = int(ip) & 0xFFFFFFFF
    prefix = ipaddress.IPv6Address(int(ip) & ~0xFFFFFFFF).exploded.rsplit(":", 2)[0]
    written.append(f"{prefix}:{ipaddress.IPv4Address(low)}")  # the last 32 bits as a dotted quad
    return st.sampled_from(written).flatmap(
        lambda text: st.sampled_from([f"[{text}]", f"[{text}%25eth0]", f"[{text}%eth0]", text])
    )


def percent_encoded(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda picks: "".join(f"%{ord(c):02x}" if pick else c for c, pick in zip(text, picks, strict=True))
    )


ipv4_hosts = st.sampled_from(PUBLIC_V4 + PRIVATE_V4).flatmap(ipv4_notations)
ipv6_hosts = st.sampled_from(PUBLIC_V6 + PRIVATE_V6).flatmap(ipv6_notations)
name_hosts = st.sampled_from(sorted(NAMES)).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name + ".", name.replace(".", "\u3002")])
)
plain_hosts = st.one_of(ipv4_hosts, ipv6_hosts, name_hosts)
# Plain forms most of the time, so that plenty of URLs pass the check and the dial itself gets judged.
hosts = st.one_of(plain_hosts, plain_hosts, plain_hosts, plain_hosts.flatmap(percent_encoded))
ports = st.one_of(st.just(""), st.sampled_from([":443", ":8443", ":0", ":65536", ":80", ":", ":+443", ": 443"]))
userinfo = st.one_of(
    st.just(""), st.just(""), st.just(""), st.sampled_from(["user@", "user:pw@", "cdn.example.com@", "%40@"])
)
paths = st.sampled_from(["/results/v.mp4", "/v.mp4?X-Signature=abc", "", "/a@b", "?q=1", "#frag"])
noise = st.sampled_from(["\\", "\\@", "\t", "\n", "\r", " ", "\x00", "\x7f", "@", "/", "%2f", "%5c", "#", "?"])


canonical_hosts = st.one_of(
    st.sampled_from(PUBLIC_V4 + PRIVATE_V4),
    st.sampled_from(PUBLIC_V6 + PRIVATE_V6).map(lambda address: f"[{address}]"),
    st.sampled_from(sorted(NAMES)),
)


@st.composite
def result_urls(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # a well-formed URL: it gets past parsing, so the address judgement is what is tested
        port = draw(st.sampled_from(["", ":443", ":8443"]))
        return f"https://{draw(canonical_hosts)}{port}{draw(paths)}"
    scheme = draw(st.sampled_from(["https://"] * 6 + ["https:/", "https:\\\\", "HTTPS://", "http://"]))
    url = f"{scheme}{draw(userinfo)}{draw(hosts)}{draw(ports)}{draw(paths)}"
    if draw(st.integers(0, 2)) == 2:  # one parser-confusing character somewhere
        at = draw(st.integers(0, len(url)))
        extra = draw(noise)
        if draw(st.booleans()):
            extra += draw(plain_hosts)
        url = url[:at] + extra + url[at:]
    return url


class Dialed(Exception):
    pass


def attempt(url: str) -> tuple[list[str], list[str], Exception | None]:
    """Run the real downloader on `url`: the hosts it asked the resolver for, the addresses it dialed, and
    the domain error it raised (None if it got as far as dialing)."""
    asked: list[str] = []
    dialed: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return getaddrinfo_like(host)

    def record_dial(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        dialed.append(address[0])
        raise Dialed(address)

    downloader = ResultDownloader(allow_private=False, resolver=resolver)
    with mock.patch.object(urllib3.util.connection, "create_connection", record_dial):
        try:
            downloader.open(url, max_bytes=1024)
        except (DownloadRefused, ResultUnavailable) as exc:
            return asked, dialed, exc
        except Dialed:
            return asked, dialed, None
    raise AssertionError("the recorder stops every request at the dial")


KNOWN_BYPASSES = [
    "https://127.0.0.1:8443\\@public.example/v.mp4",
    "https://public.example\\@127.0.0.1/v.mp4",
    "https://cdn.example.com@127.0.0.1/v.mp4",
    "https://cdn.example.com:443@169.254.169.254/v.mp4",
    "https://127.1/v.mp4",
    "https://2130706433/v.mp4",
    "https://0x7f000001/v.mp4",
    "https://0177.0.0.1/v.mp4",
    "https://0x7f.0.0.1/v.mp4",
    "https://169.254.43518/latest/meta-data/",
    "https://[::ffff:127.0.0.1]/v.mp4",
    "https://[::127.0.0.1]/v.mp4",
    "https://[64:ff9b::127.0.0.1]/v.mp4",
    "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "https://[64:ff9b:1::a00:5]/v.mp4",
    "https://[2002:7f00:1::1]/v.mp4",
    "https://[2002:a9fe:a9fe::]/latest/meta-data/",
    "https://[fec0::1]/v.mp4",
    "https://[2001::1]/v.mp4",
    "https://[::ffff:0:127.0.0.1]/v.mp4",
    "https://[fe80::1%25eth0]/v.mp4",
    "https://127.0.0.1\t/v.mp4",
    "https://cdn.example.com\n@127.0.0.1/v.mp4",
    "https://127.0.0.%31/v.mp4",
    "https://\uff11\uff12\uff17.0.0.1/v.mp4",
    "https://meta.example.com/latest/meta-data/",
    "https://internal.example.com./v.mp4",
    "https://mixed.example.com/v.mp4",
    "https://nat64.example.com/v.mp4",
    "https://loop6.example.com/v.mp4",
]


def with_examples(test: Any) -> Any:
    for url in KNOWN_BYPASSES:
        test = example(url=url)(test)
    return test


@with_examples
@given(url=result_urls())
def test_no_result_url_that_passes_the_check_dials_a_non_public_address(url):
    _, dialed, error = attempt(url)

    if error is not None:
        assert dialed == [], f"{url!r} was refused ({error}) but still dialed {dialed}"
    else:
        assert dialed, f"{url!r} neither raised nor dialed"
        for address in dialed:
            address_text = address if _is_ip(address) else getaddrinfo_like(address)[0]
            assert reaches_only_public(address_text), f"{url!r} dialed the non-public {address}"


@with_examples
@given(url=result_urls())
def test_the_host_the_check_judges_is_the_host_the_client_connects_to(url):
    asked, dialed, error = attempt(url)
    if error is not None:
        return

    # What requests connects to: its own preparation of the URL, then urlparse, as its HTTPAdapter does.
    client_host = urlsplit(str(requests.Request("GET", url).prepare().url)).hostname
    assert client_host is not None
    assert [host.lower().rstrip(".") for host in asked] == [client_host.lower().rstrip(".")]
    assert set(dialed) <= set(getaddrinfo_like(client_host))  # it dials what the check saw, nothing else


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
