"""The provider API key, read from Secrets Manager through Powertools Parameters and cached."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from seedance_pipeline.adapters.secret_reading import CACHE_SECONDS as CACHE_SECONDS  # importable from here as before
from seedance_pipeline.adapters.secret_reading import read_secret
from seedance_pipeline.errors import ProviderAuthError


class ApiKeySource:
    def __init__(self, secret_id: str, provider: SecretsProvider | None = None) -> None:
        self._secret_id = secret_id
        self._provider = provider

    def get(self, *, force_fetch: bool = False) -> str:
        if not self._secret_id:
            raise ProviderAuthError("no API key secret is configured (API_KEY_SECRET_ID is empty)")
        provider = self._provider or SecretsProvider()
        self._provider = provider
        value = read_secret(
            provider,
            self._secret_id,
            name="API key",
            missing_fix="the secret does not exist: create it or fix ApiKeySecretArn",
            force_fetch=force_fetch,
        )
        key = _extract(value)
        if not key:
            raise ProviderAuthError("the API key secret is empty; put the key in it")
        return key


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
