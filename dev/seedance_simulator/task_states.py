"""The simulator's task statuses, as each dialect reports them, and the failure reasons it gives."""

from __future__ import annotations

# Statuses as the documented gateway reports them.
NOT_START = "NOT_START"
QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
# Reached only through the native Ark dialect: a DELETE of a queued task, or execution_expires_after passing.
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
TERMINAL = (SUCCESS, FAILURE, CANCELLED, EXPIRED)
# A seed the caller leaves to the provider is drawn from the range both dialects accept.
RANDOM_SEED_MAX = 2_147_483_647

MODERATION_REASON = "The request failed because the output video may contain sensitive information."
AUDIO_MODERATION_REASON = "The request failed because the output audio may contain sensitive information."
RENDER_FAILED_REASON = "The service encountered an unexpected internal error while generating the video."
