"""The simulator's native Ark v3 routes (create, get, list, delete under /api/v3/contents/generations/tasks), mixed
into the request handler beside the gateway's; the request and answer shapes live in ark_dialect.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import parse_qs

from .ark_dialect import validate_ark_request
from .ark_listing import parse_list_query, select_tasks
from .errors import ApiError, invalid_parameter
from .host import SimulatorHost
from .input_images import load_image
from .knobs import Knobs
from .task_states import SUCCESS
from .tasks import TaskRecord
from .validation import GenerationRequest

# The native Ark dialect, under the prefix the platform's own base URLs end with.
ARK_PREFIX = "/api/v3"
ARK_TASKS_PATH = ARK_PREFIX + "/contents/generations/tasks"
VIDEO_SUFFIX = ".mp4"
LAST_FRAME_SUFFIX = ".last-frame.png"


class _Handler(Protocol):
    """What the routes need of the request handler they are mixed into."""

    @property
    def sim(self) -> SimulatorHost: ...
    def _api_call(self, method: str, answer: Callable[[], None], counter: str | None = None) -> None: ...
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None: ...
    def _record_create_body(self, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]: ...
    def _ark_create(self, raw: bytes) -> None: ...
    def _ark_from_draft(
        self, request: GenerationRequest, draft_id: str
    ) -> tuple[GenerationRequest, list[tuple[str, str, str | None]]]: ...
    def _ark_task(self, task: TaskRecord) -> dict[str, Any]: ...
    def _ark_get(self, task_id: str) -> None: ...
    def _ark_list(self, query: str) -> None: ...
    def _ark_delete(self, task_id: str) -> None: ...


def refuse_sensitive_input(knobs: Knobs) -> None:
    """The platform's input moderation, as the knobs ask: a 400 with its own code, before any task exists."""
    for knob, code, what in (
        ("input_text_sensitive_next", "InputTextSensitiveContentDetected", "the input text"),
        ("input_image_sensitive_next", "InputImageSensitiveContentDetected", "the input image"),
        (
            "input_image_privacy_next",
            "InputImageSensitiveContentDetected.PrivacyInformation",
            "the input image (it may show a real person)",
        ),
    ):
        if getattr(knobs, knob) > 0:
            setattr(knobs, knob, getattr(knobs, knob) - 1)
            raise ApiError(400, code, f"The request failed because {what} may contain sensitive information.")


class ArkRoutes:
    def _ark_dispatch(self: _Handler, method: str, path: str, query: str, body: bytes) -> None:
        if path == ARK_TASKS_PATH:
            if method == "POST":
                self._api_call("POST", lambda: self._ark_create(body))
            elif method == "GET":
                self._api_call("GET", lambda: self._ark_list(query), counter="listed")
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {ARK_TASKS_PATH}.")
        elif path.startswith(ARK_TASKS_PATH + "/") and "/" not in path[len(ARK_TASKS_PATH) + 1 :]:
            task_id = path[len(ARK_TASKS_PATH) + 1 :]
            if method == "GET":
                self._api_call("GET", lambda: self._ark_get(task_id))
            elif method == "DELETE":
                self._api_call("DELETE", lambda: self._ark_delete(task_id), counter="deletes")
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a task.")
        else:
            raise ApiError(404, "NotFound", f"No route for {method} {path}.")

    def _ark_create(self: _Handler, raw: bytes) -> None:
        body, redacted = self._record_create_body(raw)
        request, content = validate_ark_request(body)
        knobs = self.sim.knobs
        if request.model in knobs.models_not_open:
            raise ApiError(
                404,
                "ModelNotOpen",
                f"Your account has not activated the model {request.model}. Please activate it in the console.",
                param="model",
            )
        refuse_sensitive_input(knobs)
        timeout = self.sim.image_fetch_timeout
        if content.draft_task_id is not None:
            request, refs = self._ark_from_draft(request, content.draft_task_id)
        else:
            refs = [(ref.url, ref.field, ref.role) for ref in content.images]
        images = [load_image(url, field, timeout=timeout) for url, field, _ in refs]
        # Reference images steer the clip without being a frame of it: the first one is rendered from.
        last_image = images[1] if len(images) == 2 and refs[1][2] == "last_frame" else None
        task = self.sim.simulator.create_task(request, redacted, images[0], last_image)
        self._send_json(200, {"id": task.task_id})

    def _ark_from_draft(
        self: _Handler, request: GenerationRequest, draft_id: str
    ) -> tuple[GenerationRequest, list[tuple[str, str, str | None]]]:
        """The final render of an approved draft: the draft's own inputs, at the settings of this request."""
        field = "content.draft_task.id"
        draft = self.sim.simulator.get(draft_id)
        if draft is None or not draft.request.draft:
            raise invalid_parameter(field, f"{draft_id} is not a draft task of this account.")
        if draft.status != SUCCESS:
            raise invalid_parameter(field, f"the draft task {draft_id} has not succeeded.")
        if draft.request.model != request.model:
            raise invalid_parameter(field, f"the draft task {draft_id} was made with {draft.request.model}.")
        if request.draft:
            raise invalid_parameter("draft", "a draft_task item asks for the final video: draft must be false.")
        source = draft.request
        # The draft's images in its own roles (its body as received), so two reference images stay references.
        items = draft.body.get("content") or []
        roles = [item.get("role") for item in items if isinstance(item, dict) and item.get("type") == "image_url"]
        if "last_frame" in roles:
            roles = ["first_frame", "last_frame"]  # the request keeps its images first frame first
        refs = [(url, field, role) for url, role in zip(source.images, roles, strict=False)]
        final = replace(request, images=source.images, prompt=source.prompt, reference_media=source.reference_media)
        return final, refs

    def _ark_task(self: _Handler, task: TaskRecord) -> dict[str, Any]:
        return self.sim.task_payload(task, "ark")

    def _ark_get(self: _Handler, task_id: str) -> None:
        task = self.sim.simulator.get(task_id)
        if task is None:
            raise ApiError(404, "NotFound", f"The task {task_id} does not exist.", param="id")
        self._send_json(200, self._ark_task(task))

    def _ark_list(self: _Handler, query: str) -> None:
        selection = parse_list_query(parse_qs(query, keep_blank_values=False))
        total, page = select_tasks(self.sim.simulator.all_tasks(), selection)
        self._send_json(200, {"total": total, "items": [self._ark_task(task) for task in page]})

    def _ark_delete(self: _Handler, task_id: str) -> None:
        if self.sim.simulator.delete(task_id) is None:
            raise ApiError(404, "NotFound", f"The task {task_id} does not exist.", param="id")
        self._send_json(200, {})
