"""Task lifecycle over real time: states, progress, concurrency, outcomes and the render cache."""

from __future__ import annotations

import time

import pytest

from seedance_simulator import MODERATION_REASON, SimulatorServer
from tests.support.simulator_client import Client


def test_task_moves_not_start_queued_in_progress_success_with_progress(client: Client, server: SimulatorServer) -> None:
    server.knobs.not_start_seconds = 0.5
    server.knobs.queue_seconds = 0.5
    server.knobs.run_seconds = 0.8
    task_id = client.submit()
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = client.query(task_id)
        if not seen or seen[-1] != (answer["status"], answer["progress"]):
            seen.append((answer["status"], answer["progress"]))
        if answer["status"] == "SUCCESS":
            break
        time.sleep(0.03)
    statuses = [status for status, _ in seen]
    order = ["NOT_START", "QUEUED", "IN_PROGRESS", "SUCCESS"]
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == order
    progress = [int(p.rstrip("%")) for _, p in seen]
    assert progress == sorted(progress), "progress never goes back"
    assert progress[0] == 0
    assert progress[-1] == 100
    assert any(0 < p < 100 for status, p in zip(statuses, progress, strict=True) if status == "IN_PROGRESS")
    assert all(p < 100 for status, p in zip(statuses, progress, strict=True) if status != "SUCCESS")

    final = client.query(task_id)
    assert final["submit_time"] <= final["start_time"] <= final["finish_time"]
    assert final["fail_reason"] == ""
    assert final["usage"]["completion_tokens"] > 0
    record = server.task(task_id)
    assert record.started_at is not None
    assert record.finished_at is not None
    assert record.started_at - record.submitted_at == pytest.approx(1.0, abs=0.01)
    assert record.finished_at - record.started_at >= 0.8 - 1e-6


def test_success_serves_the_video_over_http(client: Client) -> None:
    answer = client.wait(client.submit())
    assert answer["status"] == "SUCCESS"
    url = answer["data"]["output"]
    assert answer["data"]["outputs"] == [url]
    video = client.session.get(url, timeout=30)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert int(video.headers["Content-Length"]) == len(video.content)
    assert video.content[4:8] == b"ftyp"


def test_result_url_does_not_answer_before_success(client: Client, server: SimulatorServer) -> None:
    server.knobs.never_finish = True
    task_id = client.submit()
    url = server.result_url(server.task(task_id), ".mp4")
    assert client.session.get(url, timeout=10).status_code == 404


def test_at_most_max_running_tasks_run_and_the_rest_queue_in_submit_order(
    client: Client, server: SimulatorServer
) -> None:
    server.knobs.max_running = 2
    server.knobs.run_seconds = 0.4
    server.knobs.never_finish = True  # hold the first two, however slowly the submits go
    task_ids = [client.submit() for _ in range(5)]
    statuses = [server.task(t).status for t in task_ids]
    assert statuses == ["IN_PROGRESS", "IN_PROGRESS", "QUEUED", "QUEUED", "QUEUED"]
    server.knobs.never_finish = False
    for task_id in task_ids:
        assert client.wait(task_id)["status"] == "SUCCESS"
    assert server.counters.peak_running == 2
    starts = [server.task(t).started_at or 0.0 for t in task_ids]
    assert starts == sorted(starts)  # FIFO
    # A queued task starts exactly when a running one finishes.
    finishes = sorted(server.task(t).finished_at or 0.0 for t in task_ids[:2])
    assert server.task(task_ids[2]).started_at == finishes[0]


def test_never_finish_keeps_tasks_in_progress_until_cleared(client: Client, server: SimulatorServer) -> None:
    server.knobs.never_finish = True
    server.knobs.run_seconds = 0.05
    task_id = client.submit()
    time.sleep(0.5)
    answer = client.query(task_id)
    assert answer["status"] == "IN_PROGRESS"
    assert answer["progress"] == "99%"
    server.knobs.never_finish = False
    assert client.wait(task_id)["status"] == "SUCCESS"


def test_failure_reason_makes_every_task_fail_with_http_200(client: Client, server: SimulatorServer) -> None:
    server.knobs.failure_reason = "The request failed because the input image may contain sensitive information."
    for task_id in [client.submit(), client.submit()]:
        answer = client.wait(task_id)
        assert answer["status"] == "FAILURE"
        assert answer["fail_reason"] == server.knobs.failure_reason
        assert answer["data"]["error"]["message"] == server.knobs.failure_reason
        assert "usage" not in answer


def test_fail_next_fails_only_the_next_n_tasks_with_a_moderation_reason(
    client: Client, server: SimulatorServer
) -> None:
    server.knobs.fail_next = 2
    task_ids = [client.submit() for _ in range(3)]
    answers = [client.wait(t) for t in task_ids]
    assert [a["status"] for a in answers] == ["FAILURE", "FAILURE", "SUCCESS"]
    assert answers[0]["fail_reason"] == MODERATION_REASON
    assert server.knobs.fail_next == 0


def test_identical_requests_render_once(client: Client, server: SimulatorServer) -> None:
    before = server.renders.renders_started
    task_ids = [client.submit(seed=7, watermark=True) for _ in range(4)]
    for task_id in task_ids:
        assert client.wait(task_id)["status"] == "SUCCESS"
    assert server.renders.renders_started - before <= 1  # one render, or none if an earlier test made it
    paths = {server.task(t).result.video_path for t in task_ids}  # type: ignore[union-attr]
    assert len(paths) == 1


def test_counters_count_calls_tasks_and_bodies(client: Client, server: SimulatorServer) -> None:
    task_id = client.submit()
    client.submit_raw(duration=3)  # rejected: counted as a call, not as a task
    answer = client.wait(task_id)
    client.session.get(answer["data"]["output"], timeout=30)
    counters = server.counters
    assert counters.submit == 2
    assert counters.query >= 1
    assert counters.download == 1
    assert counters.tasks_created == 1
    assert counters.peak_running == 1
    assert len(counters.request_bodies) == 2
    image_ref = counters.request_bodies[0]["images"][0]
    assert image_ref.startswith("data:image/png;base64,<")
    assert len(image_ref) < 64  # a placeholder, not the image
    assert counters.status_codes[400] == 1
    counters.reset()
    assert (counters.submit, counters.query, counters.download, counters.request_bodies) == (0, 0, 0, [])


def test_reset_restores_knobs_and_forgets_tasks(client: Client, server: SimulatorServer) -> None:
    task_id = client.submit()
    server.knobs.response_shape = "top_url"
    server.reset()
    assert server.knobs.response_shape == "documented"
    with pytest.raises(KeyError):
        server.task(task_id)


def test_knob_typos_fail_loudly(server: SimulatorServer) -> None:
    with pytest.raises(ValueError, match="response_shape"):
        server.knobs.response_shape = "documentd"
    with pytest.raises(ValueError, match="fault_methods"):
        server.knobs.fault_methods = "PUT"
