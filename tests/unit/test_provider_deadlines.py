"""Every provider call is given a deadline inside the job's lease and the invocation's remaining time."""

from __future__ import annotations

from pathlib import Path

import yaml

from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
TEMPLATE = Path(__file__).parents[2] / "template.yaml"
# Before its POST a submission reads an image of up to 30 MB, checks it, claims the job and presigns a URL.
WORK_BEFORE_THE_CALL_SECONDS = 20


def submit_one(runtime, storage, key="uploads/cat.jpg"):
    storage.add(BUCKET, key, image_bytes())
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer="01", etag="e1"), runtime, owner="s")


def test_a_submission_must_end_well_inside_the_claim_lease():
    runtime, _, storage, provider = make_runtime(claim_lease_seconds=40, provider_call_margin_seconds=10)
    assert submit_one(runtime, storage).outcome == "SUBMITTED"
    [budget] = provider.submit_budgets
    assert budget is not None and 0 < budget <= 30


def test_a_submission_is_bounded_by_the_call_budget_when_the_lease_is_long():
    runtime, _, storage, provider = make_runtime(provider_call_budget_seconds=12)
    submit_one(runtime, storage)
    [budget] = provider.submit_budgets
    assert budget is not None and 0 < budget <= 12


def test_a_submission_is_bounded_by_the_time_the_invocation_has_left():
    runtime, _, storage, provider = make_runtime(provider_call_margin_seconds=5)
    runtime.time_left = lambda: 20.0
    submit_one(runtime, storage)
    [budget] = provider.submit_budgets
    assert budget is not None and 0 < budget <= 15


def test_a_status_check_is_given_a_deadline_inside_its_lease():
    runtime, _, storage, provider = make_runtime(lease_seconds=30, provider_call_margin_seconds=10)
    submit_one(runtime, storage)
    runtime.clock.advance(60)
    run_poll(runtime, owner="p", time_left=lambda: 300.0)
    assert provider.get_budgets
    assert all(b is not None and 0 < b <= 20 for b in provider.get_budgets)


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_the_submit_function_outlives_its_provider_call_and_the_claim_lease_outlives_the_function():
    template = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # a SafeLoader: CloudFormation tags read as None
    function = template["Resources"]["SubmitFunction"]["Properties"]
    timeout = function.get("Timeout", template["Globals"]["Function"]["Timeout"])
    defaults = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL)
    call = defaults.provider_call_budget_seconds + defaults.provider_call_margin_seconds
    assert call + WORK_BEFORE_THE_CALL_SECONDS <= timeout < defaults.claim_lease_seconds
