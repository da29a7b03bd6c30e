"""`seedance-pipeline spend` and DailyTokenBudget on the local stack: the real handlers, moto and the simulator."""

from __future__ import annotations

import importlib
import json

import pytest

from seedance_local import cli
from seedance_pipeline.models import JobStatus
from tests.support.expect import present
from tests.support.images import image_bytes

importlib.import_module("seedance_pipeline.observability")  # bind Powertools' handler to the session capture

MODEL = "doubao-seedance-1-0-pro-250528"
# A 640x480 image at 480p with the default adaptive ratio: the 4:3 size, 736 x 544 x 121 frames / 1024.
ESTIMATE = 47_311


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # model ids on one line in rich tables


@pytest.fixture
def cli_target(stack) -> list[str]:
    return ["--table", stack.table_name, "--endpoint-url", stack.endpoint_url, "--region", stack.region]


def test_spend_shows_todays_and_this_months_tokens_and_cost_by_model(make_pipeline, sim, cli_target, capsys):
    pipeline = make_pipeline()
    sim.knobs.fail_next = 1
    for key in ("uploads/spend/refused.png", "uploads/spend/fine.png"):
        pipeline.submit(pipeline.upload(key, image_bytes(640, 480, "PNG"), {"resolution": "480p"}))
    jobs = pipeline.run_until_terminal(timeout=60)
    succeeded = jobs["uploads/spend/fine.png"]
    assert succeeded.status is JobStatus.SUCCEEDED and succeeded.estimated_tokens == ESTIMATE
    capsys.readouterr()

    assert cli.main(["spend", *cli_target, "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for period in report["periods"]:
        (row,) = period["models"]
        assert row["model"] == MODEL
        assert (row["jobs_sent"], row["estimated_tokens"], row["jobs_succeeded"]) == (2, 2 * ESTIMATE, 1)
        # The simulator's usage when it reports one, else the estimate stands in: one video's worth either way.
        charged = succeeded.billed_tokens if succeeded.billed_tokens is not None else ESTIMATE
        assert row["charged_tokens"] == charged
        assert row["currency"] == "CNY" and row["estimated_cost"] == round(charged / 1e6 * 15.0, 4)

    assert cli.main(["spend", *cli_target, "--currency", "USD"]) == 0
    table = capsys.readouterr().out
    assert "today" in table and "this month" in table and MODEL in table and "USD" in table


def test_a_daily_budget_holds_the_second_job_waiting_and_nothing_is_sent_past_it(
    make_pipeline, sim, cli_target, capsys
):
    pipeline = make_pipeline(DAILY_TOKEN_BUDGET=str(ESTIMATE + 100))
    for key in ("uploads/budget/first.png", "uploads/budget/second.png"):
        pipeline.submit(pipeline.upload(key, image_bytes(640, 480, "PNG"), {"resolution": "480p"}))
    pipeline.poll(timeout_seconds=30)
    jobs = pipeline.jobs()
    held = jobs["uploads/budget/second.png"]
    assert held.status is JobStatus.WAITING and present(held.last_error).code == "DAILY_BUDGET_REACHED"
    assert jobs["uploads/budget/first.png"].task_id is not None
    assert sim.counters.tasks_created == 1
    capsys.readouterr()
    assert cli.main(["spend", *cli_target, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["budget_committed_tokens"] == ESTIMATE
