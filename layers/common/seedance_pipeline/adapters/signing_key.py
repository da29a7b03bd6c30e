"""The callback signing key, read from Secrets Manager through Powertools Parameters and cached like the API key."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.adapters.secret_reading import CACHE_SECONDS, read_secret
from seedance_pipeline.errors import SecretUnavailable


class SigningKeySource:
    """The secret's string as it is (the stack generates 64 letters and digits); tokens are HMACs under it."""

    def __init__(
        self, secret_id: str, provider: SecretsProvider | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._clock = clock
        # (value or None, read at, the current value then): the AWSPREVIOUS version, cached here, misses included,
        # since Powertools caches by name alone (it would mix the two versions up) and never caches a failed read.
        # A cached answer holds only while the current value is the one it was read beside: once a rotation shows
        # (a new current value), "no AWSPREVIOUS" cached by a forged token's probe would refuse every genuine URL
        # signed before the rotation until the cache ran out.
        self._previous: tuple[str | None, float, str | None] | None = None
        self._current: str | None = None

    def get(self, *, force_fetch: bool = False) -> str:
        provider = self._provider or SecretsProvider()
        self._provider = provider
        value = read_secret(
            provider,
            self._secret_id,
            name="callback signing key",
            missing_fix="the secret does not exist: redeploy the stack with CallbackMode=on",
            force_fetch=force_fetch,
        )
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        if not text.strip():
            raise SecretUnavailable(
                f"the callback signing key secret {self._secret_id} is empty", secret_id=self._secret_id, cause="Empty"
            )
        self._current = text
        return text

    def previous(self) -> str | None:
        """The AWSPREVIOUS version (the value before the last rotation), or None: never rotated, or unreadable now."""
        cached = self._previous
        if cached is not None and self._clock() - cached[1] < CACHE_SECONDS and cached[2] == self._current:
            return cached[0]
        provider = self._provider or SecretsProvider()
        self._provider = provider
        value: str | None
        try:
            answer = provider.client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSPREVIOUS")
            text = answer.get("SecretString")
            value = text if isinstance(text, str) and text.strip() else None
        except (ClientError, BotoCoreError):
            value = None  # ResourceNotFoundException: no such version yet; anything else: the current key still works
        self._previous = (value, self._clock(), self._current)
        return value
