"""The simulator's provider callbacks, over real HTTP to a local receiver, in both dialects: one POST of the task's
GET answer per status change, retried when not acknowledged, and the knobs that drop, duplicate, delay, reorder
and forge them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from seedance_simulator import Knobs, SimulatorServer
from tests.support.callback_receiver import CallbackReceiver, Received
from tests.support.simulator_client import API_KEY, DEFAULT_IMAGE_URL, MODEL

JOB = "0123456789abcdef0123456789abcdef"
TOKEN = "genuine-token-Z"
STATUSES = {
    "unified": ["QUEUED", "IN_PROGRESS", "SUCCESS"],
    "ark": ["queued", "running", "succeeded"],
}
SUCCEEDED = {"unified": "SUCCESS", "ark": "succeeded"}
DIALECTS = ["unified", "ark"]
# Short enough for the whole file to run in seconds, long enough for every state to be its own moment.
FAST = Knobs(api_key=API_KEY, queue_seconds=0.1, run_seconds=0.1, callback_retry_seconds=0.02)


@pytest.fixture(scope="module")
def module_server() -> Iterator[SimulatorServer]:
    with SimulatorServer(api_key=API_KEY, knobs=FAST.copy()) as server:
        yield server


@pytest.fixture
def server(module_server: SimulatorServer) -> SimulatorServer:
    module_server.reset()
    # An empty result instead of a rendered MP4: these tests are about the task's states, not its video.
    module_server.knobs.video_body_factory = lambda task: (0, [])
    return module_server


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as receiver:
        yield receiver


class Provider:
    """Create and get in either dialect, as the pipeline's clients do."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.trust_env = False
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    def _tasks_url(self, dialect: str) -> str:
        if dialect == "ark":
            return self.server.ark_base_url + "/contents/generations/tasks"
        return self.server.base_url + "/v2/videos/generations"

    def create_raw(self, dialect: str, **fields: Any) -> requests.Response:
        body: dict[str, Any] = {"model": MODEL, "resolution": "480p", "ratio": "16:9"}
        if dialect == "ark":
            image = {"type": "image_url", "image_url": {"url": DEFAULT_IMAGE_URL}, "role": "first_frame"}
            body.update(content=[{"type": "text", "text": "a slow push-in"}, image], frames=29)
        else:
            body.update(prompt="a slow push-in", images=[DEFAULT_IMAGE_URL], duration=5)
        body.update(fields)
        return self.session.post(self._tasks_url(dialect), json=body, headers=self.headers, timeout=30)

    def create(self, dialect: str, **fields: Any) -> str:
        response = self.create_raw(dialect, **fields)
        assert response.status_code == 200, response.text
        answer = response.json()
        return str(answer["id"] if dialect == "ark" else answer["task_id"])

    def get(self, dialect: str, task_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self._tasks_url(dialect)}/{task_id}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def delete(self, task_id: str) -> None:
        url = f"{self._tasks_url('ark')}/{task_id}"
        assert self.session.delete(url, headers=self.headers, timeout=30).status_code == 200


@pytest.fixture
def provider(server: SimulatorServer) -> Provider:
    return Provider(server)


def statuses(received: list[Received]) -> list[str]:
    return [r.status for r in received]


def ends_with(status: str, times: int = 1) -> Callable[[list[Received]], bool]:
    return lambda received: statuses(received).count(status) >= times


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def answers(server: SimulatorServer, total: int) -> dict[int, int]:
    """The receivers' answers by status, once the sender has read `total` of them (it counts after the receiver)."""
    eventually(lambda: sum(server.counters.callback_status_codes.values()) >= total)
    return dict(server.counters.callback_status_codes)


def task_id_of(received: Received) -> str:
    return str(received.body.get("id") or received.body.get("task_id"))


# -- the callbacks themselves ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_status_change_is_called_back_in_order_with_what_a_get_answers(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver, dialect: str
) -> None:
    task_id = provider.create(dialect, callback_url=receiver.url(job=JOB, token=TOKEN))

    received = receiver.wait_for(ends_with(SUCCEEDED[dialect]))

    assert statuses(received) == STATUSES[dialect]
    assert {task_id_of(r) for r in received} == {task_id}
    assert all(r.path == "/callback" and r.query == {"job": JOB, "token": TOKEN} for r in received)
    assert all(r.content_type.startswith("application/json") for r in received)
    assert received[-1].body == provider.get(dialect, task_id)
    # Every state is called back with the same fields a GET shows in it.
    assert all(set(r.body) <= set(received[-1].body) for r in received)
    assert server.counters.callbacks_sent == 3
    assert answers(server, 3) == {200: 3}


def test_a_gateway_task_that_waits_before_queueing_calls_back_not_start_first(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    server.knobs.not_start_seconds = 0.1
    provider.create("unified", callback_url=receiver.url())

    received = receiver.wait_for(ends_with("SUCCESS"))

    assert statuses(received) == ["NOT_START", "QUEUED", "IN_PROGRESS", "SUCCESS"]


def test_the_provider_records_when_a_called_back_task_became_terminal(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    task_id = provider.create("ark", callback_url=receiver.url())

    received = receiver.wait_for(ends_with("succeeded"))

    task = server.task(task_id)
    assert task.terminal_at is not None and task.finished_at is not None
    assert task.finished_at <= task.terminal_at <= received[-1].received_at


@pytest.mark.parametrize(
    ("dialect", "setup", "expected"),
    [
        ("unified", "fail", ["QUEUED", "IN_PROGRESS", "FAILURE"]),
        ("ark", "fail", ["queued", "running", "failed"]),
        ("ark", "expire", ["queued", "running", "expired"]),
    ],
)
def test_a_task_that_does_not_succeed_calls_back_how_it_ended(
    provider: Provider,
    server: SimulatorServer,
    receiver: CallbackReceiver,
    dialect: str,
    setup: str,
    expected: list[str],
) -> None:
    if setup == "fail":
        server.knobs.fail_next = 1
    else:
        server.knobs.never_finish = True
        server.knobs.execution_expiry_scale = 0.0001  # the 3600 s minimum: 0.36 s
    fields = {"execution_expires_after": 3600} if setup == "expire" else {}
    task_id = provider.create(dialect, callback_url=receiver.url(), **fields)

    received = receiver.wait_for(ends_with(expected[-1]))

    assert statuses(received) == expected
    assert received[-1].body == provider.get(dialect, task_id)


def test_the_gateway_takes_the_callback_url_from_the_field_the_knob_names(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    server.knobs.unified_callback_field = "notify_url"
    ignored = provider.create("unified", callback_url=receiver.url("/ignored"))
    named = provider.create("unified", notify_url=receiver.url("/named"))

    received = receiver.wait_for(ends_with("SUCCESS"))

    assert [(r.path, task_id_of(r)) for r in received] == [("/named", named)] * 3
    assert server.task(ignored).request.callback_url is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_task_without_a_callback_url_is_never_called_back(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver, dialect: str
) -> None:
    silent = provider.create(dialect)
    loud = provider.create(dialect, callback_url=receiver.url())

    received = receiver.wait_for(ends_with(SUCCEEDED[dialect]))
    eventually(lambda: server.task(silent).terminal)

    assert {task_id_of(r) for r in received} == {loud}
    assert server.counters.callbacks_sent == 3


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "bad",
    ["not a url", "ftp://example.com/hook", "http://", "http:///hook", "http://host:port/", "http://a b/", "", 42],
    ids=["words", "ftp", "no-host", "empty-host", "bad-port", "space", "empty", "number"],
)
def test_a_malformed_callback_url_is_refused_and_makes_no_task(
    provider: Provider, server: SimulatorServer, dialect: str, bad: object
) -> None:
    response = provider.create_raw(dialect, callback_url=bad)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter" and "callback_url" in error["message"]
    assert server.counters.tasks_created == 0
    assert server.tasks() == []


def test_a_cancelled_ark_task_is_not_called_back(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    """The platform calls back queued, running, succeeded, failed and expired; not cancelled (issue 18)."""
    server.knobs.queue_seconds = 60.0
    cancelled = provider.create("ark", callback_url=receiver.url(job="cancelled"))
    receiver.wait_for(ends_with("queued"))
    provider.delete(cancelled)
    assert provider.get("ark", cancelled)["status"] == "cancelled"
    # A second task's whole life, called back after the cancel: a cancelled callback would have been queued at the
    # DELETE, before this task existed, and sent long before this one ends.
    server.knobs.queue_seconds = 0.0
    provider.create("ark", callback_url=receiver.url(job="later"))
    received = receiver.wait_for(ends_with("succeeded"))

    assert [r.body["status"] for r in received if r.body["id"] == cancelled] == ["queued"]


def test_an_overlong_callback_url_is_refused(provider: Provider, server: SimulatorServer) -> None:
    response = provider.create_raw("ark", callback_url="https://example.com/" + "a" * 2100)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "callback_url"
    assert server.counters.tasks_created == 0


# -- delivery: retries ----------------------------------------------------------------------------------------


def test_a_receiver_that_keeps_answering_500_gets_three_retries_of_a_final_callback_and_no_more(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    # The platform retries succeeded and failed callbacks only (issue 18); the gateway retries each of its own.
    receiver.answer = lambda received: 500
    provider.create("ark", callback_url=receiver.url())

    eventually(lambda: server.counters.callbacks_failed == 3)

    assert statuses(receiver.received) == ["queued", "running"] + ["succeeded"] * 4
    assert server.counters.callbacks_sent == 6
    assert server.counters.callback_status_codes == {500: 6}


def test_a_callback_that_gets_no_answer_is_retried_until_one_comes(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    unanswered = iter([None, None])
    receiver.answer = lambda received: next(unanswered, 200)
    provider.create("unified", callback_url=receiver.url())

    received = receiver.wait_for(ends_with("SUCCESS"))

    assert statuses(received) == ["QUEUED"] * 3 + ["IN_PROGRESS", "SUCCESS"]
    assert answers(server, 5) == {0: 2, 200: 3}
    assert server.counters.callbacks_failed == 0


# -- the knobs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_callback_drop_swallows_the_next_callbacks(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver, dialect: str
) -> None:
    server.knobs.callback_drop = 1
    provider.create(dialect, callback_url=receiver.url())

    received = receiver.wait_for(ends_with(SUCCEEDED[dialect]))

    assert statuses(received) == STATUSES[dialect][1:]
    assert server.counters.callbacks_dropped == 1
    assert server.knobs.callback_drop == 0


def test_callback_duplicate_sends_each_callback_again(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    server.knobs.callback_duplicate = 2
    provider.create("ark", callback_url=receiver.url())

    received = receiver.wait_for(ends_with("succeeded", times=3))

    assert statuses(received) == ["queued"] * 3 + ["running"] * 3 + ["succeeded"] * 3
    assert received[0].body == received[1].body == received[2].body


def test_callback_delay_holds_each_callback_back(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver
) -> None:
    server.knobs.callback_delay_seconds = 0.3
    task_id = provider.create("ark", callback_url=receiver.url())

    received = receiver.wait_for(ends_with("succeeded"))

    assert statuses(received) == STATUSES["ark"]
    terminal_at = server.task(task_id).terminal_at
    assert terminal_at is not None and received[-1].received_at >= terminal_at + 0.3


@pytest.mark.parametrize("dialect", DIALECTS)
def test_callback_reorder_sends_a_tasks_callbacks_newest_state_first_once_it_ends(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver, dialect: str
) -> None:
    server.knobs.callback_reorder = True
    task_id = provider.create(dialect, callback_url=receiver.url())

    received = receiver.wait_for(lambda received: len(received) == 3)

    assert statuses(received) == list(reversed(STATUSES[dialect]))
    terminal_at = server.task(task_id).terminal_at
    assert terminal_at is not None and received[0].received_at >= terminal_at


@pytest.mark.parametrize("dialect", DIALECTS)
def test_callback_forge_adds_a_tampered_token_another_job_and_a_premature_success(
    provider: Provider, server: SimulatorServer, receiver: CallbackReceiver, dialect: str
) -> None:
    # Like the pipeline's receiver: a wrong token or job is refused, and a refusal is not retried.
    receiver.answer = lambda r: 200 if r.query == {"job": JOB, "token": TOKEN} else 403
    server.knobs.callback_forge = True
    task_id = provider.create(dialect, callback_url=receiver.url(job=JOB, token=TOKEN))

    received = receiver.wait_for(lambda received: len(received) == 11)

    def kind(r: Received) -> str:
        if r.query.get("token") != TOKEN:
            assert r.query["job"] == JOB
            return "token"
        if r.query.get("job") != JOB:
            assert len(r.query["job"]) == 32 and int(r.query["job"], 16) >= 0
            return "job"
        return "genuine"

    queued, running, done = STATUSES[dialect]
    assert [(kind(r), r.status) for r in received] == [
        ("genuine", queued),
        ("token", queued),
        ("job", queued),
        ("genuine", done),  # the claim, sent while the task is still queued
        ("genuine", running),
        ("token", running),
        ("job", running),
        ("genuine", done),  # the claim, sent while it runs
        ("genuine", done),
        ("token", done),
        ("job", done),
    ]
    assert {task_id_of(r) for r in received} == {task_id}
    assert server.counters.callbacks_forged == 8
    assert server.counters.callbacks_sent == 3
    assert answers(server, 11) == {200: 5, 403: 6}


# -- lifecycle ------------------------------------------------------------------------------------------------


def test_stopping_the_server_stops_the_ticker_and_the_senders(receiver: CallbackReceiver) -> None:
    never = threading.Event()

    def slow(received: Received) -> int:
        never.wait(1.0)  # a receiver in no hurry: stop() must not wait for it much
        return 200

    receiver.answer = slow
    server = SimulatorServer(api_key=API_KEY, knobs=FAST.copy())
    server.start()
    server.knobs.video_body_factory = lambda task: (0, [])
    Provider(server).create("ark", callback_url=receiver.url())
    eventually(lambda: len(server.callbacks.threads) > 1)

    server.stop()

    assert not [thread.name for thread in server.callbacks.threads if thread.is_alive()]
