"""Judge a result URL before anything is fetched: one host every URL parser agrees on, public addresses only.

A URL that the standard library and urllib3 could read differently is refused outright, so the address check
judges the very host the HTTP client connects to. Addresses are public only if they are globally routable,
including the IPv4 addresses that some IPv6 ranges embed or reach.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from seedance_pipeline.errors import DownloadRefused, ResultUnavailable

# IPv6 ranges that ipaddress calls global (on some Python versions) but that reach IPv4 space or are not
# routable on the public internet. The NAT64 well-known prefix and 6to4 are judged by the IPv4 they embed.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_REFUSED_IPV6 = tuple(
    ipaddress.ip_network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated), also :: and ::1
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/32",  # Teredo: the embedded addresses are obfuscated and relayed
        "fec0::/10",  # site-local (deprecated, still private in practice)
    )
)
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


def resolve_host(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResultUnavailable(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in _NAT64_WELL_KNOWN:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour:
            ip = ip.sixtofour
        elif any(ip in net for net in _REFUSED_IPV6):
            return False
    return ip.is_global and not ip.is_multicast


def host_key(host: str) -> str:
    """The form urllib3 keys and dials a host by: lower case, no IPv6 brackets, no trailing dot."""
    return host.lower().strip("[]").rstrip(".")


def refuse_ambiguous(url: str, allowed_schemes: set[str]) -> tuple[SplitResult, str, int]:
    """Parse the URL the way the standard library and urllib3 (requests' parser) both do, and refuse any URL
    they could read differently: the check must judge the very host the HTTP client connects to."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url) or "\\" in url:
        raise DownloadRefused(
            "refusing a result URL with whitespace, control characters or backslashes: URL parsers disagree on them"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced IPv6 bracket, for one
        raise DownloadRefused(f"refusing a result URL that does not parse cleanly: {exc}") from exc
    if parts.scheme not in allowed_schemes:
        raise DownloadRefused(f"refusing to download over {parts.scheme or 'no scheme'}: only https is allowed")
    if "@" in parts.netloc:
        raise DownloadRefused("refusing a result URL with credentials in it (user@host)")
    if not parts.hostname:
        raise DownloadRefused("the result URL has no host")
    if not parts.netloc.isascii():
        raise DownloadRefused("refusing a result URL with a non-ASCII host: it normalises differently per parser")
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
        theirs = parse_url(url)
    except (ValueError, LocationParseError) as exc:
        raise DownloadRefused(f"refusing a result URL that does not parse cleanly: {type(exc).__name__}") from exc
    host = parts.hostname
    their_port = theirs.port if theirs.port is not None else port
    if (theirs.scheme, host_key(theirs.host or ""), their_port) != (parts.scheme, host_key(host), port):
        raise DownloadRefused("refusing a result URL that URL parsers read differently")
    if not 0 < port < 65536:
        raise DownloadRefused(f"refusing a result URL with port {port}")
    if parts.netloc.rsplit(":", 1)[0].startswith("[") or ":" in host:
        if "%" in host:
            raise DownloadRefused("refusing a result URL with an IPv6 zone")
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise DownloadRefused("refusing a result URL whose IPv6 host is not a plain address") from exc
    elif not _HOST_NAME.fullmatch(host):
        raise DownloadRefused("refusing a result URL whose host is not a plain DNS name or IP address")
    elif _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]) and not _is_canonical_ipv4(host):
        # 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1: resolvers read these as IPv4 in ways a name check cannot
        raise DownloadRefused(f"refusing a result URL with the non-canonical IPv4 host {host}")
    return parts, host, port


def _is_canonical_ipv4(host: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False
