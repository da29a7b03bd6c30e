"""Values shared by the integration fixtures and tests (a plain module: conftest files are not importable)."""

import secrets

# A recognisable key: the secrets test looks for it in every output.
API_KEY = "sk-test-" + secrets.token_hex(12)

# The simulator finishes in about a second, so the check schedule is scaled down to match.
FAST = {"CHECK_SCHEDULE_SCALE": "0.02", "POWERTOOLS_METRICS_DISABLED": "true", "POLL_WINDOW_SECONDS": "20"}
