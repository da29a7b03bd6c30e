"""Reading a secret from Secrets Manager through Powertools Parameters, and saying why a read failed.

The provider API key and the callback signing key are read the same way; a failed read of either becomes a
SecretUnavailable that names the secret, the AWS error code and what an operator should do, and never carries
the secret's value or the AWS message.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from seedance_pipeline.errors import SecretUnavailable

CACHE_SECONDS = 300

# What an operator should do about each Secrets Manager / KMS error code but ResourceNotFoundException, whose fix
# depends on the secret; anything else is read as transient.
_FIXES = {
    "AccessDeniedException": "the function's role may not read the secret (secretsmanager:GetSecretValue)",
    "DecryptionFailure": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "KMSAccessDeniedException": "the secret's KMS key refuses the function's role (kms:Decrypt)",
    "InvalidRequestException": "the secret is scheduled for deletion or disabled: restore it",
}
_TRANSIENT_FIX = "Secrets Manager did not answer (throttled or unreachable); nothing to fix if it passes"


def read_secret(
    provider: SecretsProvider, secret_id: str, *, name: str, missing_fix: str, force_fetch: bool = False
) -> Any:
    """The secret's current value, cached for CACHE_SECONDS. `name` says which secret it is in the error ("API
    key"); `missing_fix` is what to do when it does not exist."""
    try:
        return provider.get(secret_id, max_age=CACHE_SECONDS, force_fetch=force_fetch)
    except (GetParameterError, ClientError, BotoCoreError) as exc:
        cause = secret_error_code(exc)
        fix = missing_fix if cause == "ResourceNotFoundException" else _FIXES.get(cause, _TRANSIENT_FIX)
        raise SecretUnavailable(
            f"the {name} secret {secret_id} could not be read ({cause}): "
            f"{fix}; jobs wait and resume once it is readable",
            secret_id=secret_id,
            cause=cause,
        ) from None


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
