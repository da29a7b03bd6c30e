"""Callback tokens out of every text a provider sends back, before it is logged, stored or published.

A low-level module (it imports nothing of the package), so models.py and errors.py can redact without reaching up
into rules/. Two layers:

- by value: every token this process signed or verified is remembered, and any run of token characters that holds
  one is redacted, whatever quoting surrounds it (token characters, base64url, survive percent-encoding, JSON and
  HTML escaping, reprs of parsed queries, twice-encoded URLs);
- by shape: a token this process never saw (the poller reading a failure reason of a job another container sent)
  is caught after a `token` marker in any of the common quoting shapes: `token=`, `token: `, `token = `, `%3D`,
  `%253D`, `\\u003d`, `&#61;`, `'token': ['...']` (a Python parse_qs repr), Go's `map[token:[...]]`.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"
# base64url of an HMAC-SHA256 without padding (rules/callback_token.TOKEN_LENGTH).
SECRET_LENGTH = 43
# Enough for every job one container sends or checks in its lifetime; the oldest are forgotten first.
_MAX_REMEMBERED = 20_000
_remembered: dict[str, None] = {}
_lock = threading.Lock()

_RUN = re.compile(rf"[A-Za-z0-9_-]{{{SECRET_LENGTH},}}")
_QUOTE = r"""(?:["'`\]\)]|\\["']|%22|%27|%2522|%2527|&quot;|&#34;|&#39;)"""
_OPEN = r"""(?:["'`\[\(]|\\["']|%22|%27|%5B|%2522|%2527|%255B|&quot;|&#34;|&#39;)"""
_EQUALS = r"(?:=|:|%3D|%253D|%25253D|%3A|%253A|\\u003[dD]|\\u003[aA]|&#61;|&#x3[dD];|&equals;|&#58;|&colon;)"
_TOKEN_IN_TEXT = re.compile(
    rf"(token{_QUOTE}*\s*{_EQUALS}\s*{_OPEN}*\s*)[A-Za-z0-9_-]+",
    re.IGNORECASE,
)


def remember_secret(value: str) -> None:
    """A token this process signed or verified: redacted wherever it appears from now on."""
    if len(value) != SECRET_LENGTH:
        return
    with _lock:
        _remembered.pop(value, None)
        _remembered[value] = None
        while len(_remembered) > _MAX_REMEMBERED:
            del _remembered[next(iter(_remembered))]


def redact_tokens(text: str) -> str:
    """`text` without any callback token in it (see the module's docstring)."""
    if _remembered:
        text = _RUN.sub(_redact_known, text)
    return _TOKEN_IN_TEXT.sub(lambda match: match.group(1) + REDACTED, text)


def _redact_known(match: re.Match[str]) -> str:
    run = match.group(0)
    known = _remembered
    for start in range(len(run) - SECRET_LENGTH + 1):
        if run[start : start + SECRET_LENGTH] in known:
            return REDACTED  # the whole run: a token glued to other token characters (`3D` of a `%253D`) goes too
    return run
