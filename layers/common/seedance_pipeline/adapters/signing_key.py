"""The callback signing key, read from Secrets Manager through Powertools Parameters and cached like the API key."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.adapters.api_key import CACHE_SECONDS, secret_error_code
from seedance_pipeline.errors import SecretUnavailable

_FIXES = {
    "ResourceNotFoundException": "the secret does not exist: redeploy the stack with CallbackMode=on",
    "AccessDeniedException": "the function's role may not read the secret (secretsmanager:GetSecretValue)",
    "DecryptionFailure": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "KMSAccessDeniedException": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "InvalidRequestException": "the secret is scheduled for deletion or disabled: restore it",
}
_TRANSIENT_FIX = "Secrets Manager did not answer (throttled or unreachable); nothing to fix if it passes"


class SigningKeySource:
    """The secret's string as it is (the stack generates 64 letters and digits); tokens are HMACs under it."""

    def __init__(self, secret_id: str, provider: SecretsProvider | None = None) -> None:
        self._secret_id = secret_id
        self._provider = provider

    def get(self, *, force_fetch: bool = False) -> str:
        provider = self._provider or SecretsProvider()
        self._provider = provider
        try:
            value: Any = provider.get(self._secret_id, max_age=CACHE_SECONDS, force_fetch=force_fetch)
        except (GetParameterError, ClientError, BotoCoreError) as exc:
            cause = secret_error_code(exc)
            raise SecretUnavailable(
                f"the callback signing key secret {self._secret_id} could not be read ({cause}): "
                f"{_FIXES.get(cause, _TRANSIENT_FIX)}; jobs wait and resume once it is readable",
                secret_id=self._secret_id,
                cause=cause,
            ) from None
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        if not text.strip():
            raise SecretUnavailable(
                f"the callback signing key secret {self._secret_id} is empty", secret_id=self._secret_id, cause="Empty"
            )
        return text
