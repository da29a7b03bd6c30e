"""The provider API key, read from Secrets Manager through Powertools Parameters and cached."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.errors import ProviderAuthError, SecretUnavailable

CACHE_SECONDS = 300

# What an operator should do about each Secrets Manager / KMS error code; anything else is read as transient.
_FIXES = {
    "ResourceNotFoundException": "the secret does not exist: create it or fix ApiKeySecretArn",
    "AccessDeniedException": "the function's role may not read the secret (secretsmanager:GetSecretValue)",
    "DecryptionFailure": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "KMSAccessDeniedException": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "InvalidRequestException": "the secret is scheduled for deletion or disabled: restore it",
}
_TRANSIENT_FIX = "Secrets Manager did not answer (throttled or unreachable); nothing to fix if it passes"


class ApiKeySource:
    def __init__(self, secret_id: str, provider: SecretsProvider | None = None) -> None:
        self._secret_id = secret_id
        self._provider = provider

    def get(self, *, force_fetch: bool = False) -> str:
        if not self._secret_id:
            raise ProviderAuthError("no API key secret is configured (API_KEY_SECRET_ID is empty)")
        provider = self._provider or SecretsProvider()
        self._provider = provider
        try:
            value: Any = provider.get(self._secret_id, max_age=CACHE_SECONDS, force_fetch=force_fetch)
        except (GetParameterError, ClientError, BotoCoreError) as exc:
            cause = secret_error_code(exc)
            raise SecretUnavailable(
                f"the API key secret {self._secret_id} could not be read ({cause}): "
                f"{_FIXES.get(cause, _TRANSIENT_FIX)}; jobs wait and resume once it is readable",
                secret_id=self._secret_id,
                cause=cause,
            ) from None
        key = _extract(value)
        if not key:
            raise ProviderAuthError("the API key secret is empty; put the key in it")
        return key


def secret_error_code(exc: BaseException) -> str:
    """The AWS error code behind a failed read. Powertools wraps the ClientError in a GetParameterError, keeping
    only its text; the original is the wrapper's context. The message is never used: only codes and class names."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            return str(seen.response.get("Error", {}).get("Code") or "ClientError")
        if isinstance(seen, BotoCoreError):
            return type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _extract(value: Any) -> str:
    """Accept a plain string secret or a JSON one with an `api_key` field."""
    text = value.decode() if isinstance(value, bytes) else str(value or "")
    text = text.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return text
        return str(document.get("api_key") or document.get("apiKey") or "")
    return text
