"""The seed a job sends when its upload sets none, so that its task can be told apart in the provider's task list.

The native Ark task list shows neither the prompt, nor the images, nor `callback_url` of a task, only its settings
and the seed it was made with (docs/provider-api.md, "The native Ark v3 API"). Two uploads with the same settings
(the default prompt and ratio make them common) are told apart there by their seeds alone, and only by a seed that
is known to be this job's. So a job whose upload sets no seed sends one derived from its id: stable for the job
(a retry sends the same), different for every upload. A seed the upload sets is sent as it is: it is the user's
choice, may be shared by any number of uploads, and so proves nothing in the list.
"""

from __future__ import annotations

import hashlib
from typing import Any

from seedance_pipeline.models import VideoRequest
from seedance_pipeline.rules.model_catalogue import ProviderApi

_CONTEXT = b"seedance-lookup-seed/v1/"
# 0 to 2**31 - 1: inside both dialects' ranges (the gateway takes 0..2147483647, Ark -1..2**32-1), never -1
# ("random"), so the task reports exactly this seed.
LOOKUP_SEED_LIMIT = 2**31


def lookup_seed(job_id: str, attempt: int = 0) -> int:
    """The job's own seed: the first bytes of a hash of its id, in 0..2**31-1. A resubmission (attempt 1, 2...,
    ResubmitOnOutputModeration with a new seed) has a seed of its own, so its task is told apart from the first."""
    suffix = f":resubmission:{attempt}" if attempt else ""
    digest = hashlib.sha256(_CONTEXT + (job_id + suffix).encode()).digest()
    return int.from_bytes(digest[:8], "big") % LOOKUP_SEED_LIMIT


def with_lookup_seed(request: VideoRequest, job_id: str, provider_api: ProviderApi) -> VideoRequest:
    """The request as it is sent: with the job's own seed where the dialect can look a task up (Ark) and the
    upload set none. The job records it, so the sidecar shows the seed that made the video."""
    if provider_api != "ark" or request.seed is not None:
        return request
    return request.model_copy(update={"seed": lookup_seed(job_id)})


def carries_lookup_seed(body: dict[str, Any], job_id: str, attempt: int = 0) -> bool:
    """Whether a provider body carries the seed of this job's attempt (and so its task can be recognised in a list).
    A resubmission that kept an earlier task's seed (one retried without audio) carries none of its own: the list
    would show the earlier task with the same seed, so its lost answer stays uncertain."""
    seed = body.get("seed")
    return isinstance(seed, int) and not isinstance(seed, bool) and seed == lookup_seed(job_id, attempt)
