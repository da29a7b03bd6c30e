"""resolve_request for the many rows of one batch file, each distinct set of fields but the prompt checked once.

A 10,000-row file usually asks for one model, resolution and duration with 10,000 prompts: the checks against the
model catalogue (platforms, retirement, durations, options) cost more than the rest of a row's job, and their
answer does not depend on the prompt, which resolve_request only decodes and cuts. So each row's prompt is resolved
alone, first (as resolve_request does, so a bad prompt is still the error reported), and the rest of its request,
or the refusal of it, is taken from the first row that asked for the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import VideoRequest
from seedance_pipeline.rules.model_catalogue import ImageMode
from seedance_pipeline.rules.video_request import metadata_fields, resolve_prompt, resolve_request
from seedance_pipeline.settings import Settings

RequestKey = tuple[ImageMode, int, tuple[tuple[str, str], ...]]


class RowRequests:
    """One per batch file read: `resolve` gives what resolve_request(settings, overrides, ...) gives (the same
    request, or an InvalidInput with the same message and code)."""

    def __init__(self, settings: Settings, *, source: str, code: ErrorCode) -> None:
        self._settings = settings
        self._source = source
        self._code = code
        self._seen: dict[RequestKey, VideoRequest | InvalidInput] = {}

    def resolve(self, overrides: Mapping[str, str], *, mode: ImageMode, image_count: int) -> VideoRequest:
        meta = metadata_fields(overrides)
        prompt, truncated = resolve_prompt(self._settings, meta)
        rest = {name: value for name, value in meta.items() if name != "prompt"}
        key: RequestKey = (mode, image_count, tuple(sorted(rest.items())))
        found = self._seen.get(key)
        if found is None:
            try:
                found = resolve_request(
                    self._settings, rest, mode=mode, image_count=image_count, source=self._source, code=self._code
                )
            except InvalidInput as exc:
                found = exc
            self._seen[key] = found
        if isinstance(found, InvalidInput):
            raise type(found)(found.message, code=found.code)
        return found.model_copy(update={"prompt": prompt, "prompt_truncated": truncated})
