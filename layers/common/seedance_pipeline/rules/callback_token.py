"""Per-job callback tokens and URLs: the only thing that lets a provider's POST move a job on.

The provider signs nothing (docs/provider-api.md, "Callbacks"), so each job's callback URL carries its own token:
base64url (no padding) of HMAC-SHA256(signing key, b"seedance-callback/v1/" + job id). A token proves the caller
got the URL from us for that one job; it never proves what the body claims (a status GET confirms that).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import urlencode

from seedance_pipeline.redaction import SECRET_LENGTH, remember_secret

_CONTEXT = b"seedance-callback/v1/"
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# The length of base64url(SHA-256) without padding: anything else is refused before any HMAC is computed.
TOKEN_LENGTH = SECRET_LENGTH
# The lease owner of a callback's hand-off (logic/callback_intake.py): it tells a job the callback brought forward
# from one a poll found by itself.
HANDOFF_OWNER_PREFIX = "callback-handoff:"


def is_job_id(value: object) -> bool:
    """Job ids are 32 lowercase hex characters (rules/keys.job_id_for); anything else is refused before any work."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def callback_token(signing_key: str, job_id: str) -> str:
    """The job's token. Every token computed is remembered for redaction by value (seedance_pipeline.redaction):
    whatever quoting a provider wraps around an echo of our URL, the token it sent us is never kept."""
    digest = hmac.new(signing_key.encode("utf-8"), _CONTEXT + job_id.encode("ascii"), hashlib.sha256).digest()
    token = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    remember_secret(token)
    return token


def token_matches(signing_key: str, job_id: object, token: object) -> bool:
    """Whether `token` is the one `job_id`'s URL carries. Constant time in the token's content: a caller learns
    nothing about the right token from how long a wrong one took."""
    if not is_job_id(job_id) or not isinstance(token, str) or len(token) != TOKEN_LENGTH or not token.isascii():
        return False
    assert isinstance(job_id, str)
    return hmac.compare_digest(callback_token(signing_key, job_id), token)


def callback_url_for(base_url: str, job_id: str, token: str) -> str:
    """`{base}?job=..&token=..`, joined to any query the base already has (AWS gives the Function URL with a
    trailing slash and no query; an operator's own URL may have one)."""
    query = urlencode({"job": job_id, "token": token})
    if "?" not in base_url:
        separator = "?"
    elif base_url.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return f"{base_url}{separator}{query}"
