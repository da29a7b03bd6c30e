"""What only the native Ark dialect can do, against the simulator over real HTTP: find a task whose creation
answer was lost, and cancel a queued task whose job has given up on it."""

from __future__ import annotations

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_lost_ark_creation_answer_is_found_in_the_task_list_and_the_job_succeeds_with_one_task(pipeline, sim):
    sim.knobs.lose_answers_next = 1  # the task is created and billed; the answer never arrives
    # The shared simulator keeps other tests' tasks: a seed of its own makes this request the only one that matches
    # (two identical requests a minute apart are ambiguous, and then the job stays uncertain, as it should).
    upload = pipeline.upload("uploads/lost.jpg", image_bytes(), {"seed": "424242"})
    outcome = pipeline.submit(upload)["outcomes"][0]
    assert outcome["outcome"] == "SUBMITTED", outcome
    job = pipeline.run_until_terminal(timeout=60)["uploads/lost.jpg"]
    assert job.status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1 and sim.counters.listed >= 1
    assert any("task list" in note or "found" in note for note in job.notes), job.notes


@pytest.mark.parametrize("dialect", ["unified"], indirect=True)
def test_the_gateway_cannot_look_a_lost_answer_up_so_the_job_is_uncertain_and_never_resent(pipeline, sim):
    sim.knobs.lose_answers_next = 1
    outcome = pipeline.submit(pipeline.upload("uploads/lost.jpg", image_bytes()))["outcomes"][0]
    assert outcome["outcome"] == "FAILED"
    assert pipeline.jobs()["uploads/lost.jpg"].error.code == "SUBMISSION_UNCERTAIN"
    pipeline.poll(timeout_seconds=20)
    assert sim.counters.tasks_created == 1 and sim.counters.submit == 1


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_queued_ark_task_is_cancelled_when_its_job_times_out(make_pipeline, sim):
    pipeline = make_pipeline(MAX_JOB_AGE_MINUTES="0.05")
    sim.knobs.queue_seconds = 600  # the task stays queued far past the job's age limit
    pipeline.submit(pipeline.upload("uploads/queued.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/queued.jpg"]
    assert job.status is JobStatus.TIMED_OUT
    assert sim.counters.deletes == 1 and sim.counters.cancelled == 1
    assert any("cancel" in note for note in job.notes), job.notes
    # Called a cancel only because the task read `cancelled` afterwards, and said so in the error the event carries.
    assert "was cancelled (its status reads cancelled); nothing is billed" in job.error.message


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_running_ark_task_is_never_deleted_and_its_timed_out_job_says_it_may_be_billed(make_pipeline, sim):
    """Failed on 26248cd: the job ended TIMED_OUT with nothing said of the task, which runs on and is billed."""
    pipeline = make_pipeline(MAX_JOB_AGE_MINUTES="0.05")
    sim.knobs.queue_seconds = 0
    sim.knobs.run_seconds = 600  # running far past the job's age limit: Ark cannot cancel a running task
    pipeline.submit(pipeline.upload("uploads/running.jpg", image_bytes()))
    job = pipeline.run_until_terminal(timeout=60)["uploads/running.jpg"]
    assert job.status is JobStatus.TIMED_OUT
    assert sim.counters.deletes == 0
    assert "may still finish and be billed" in job.error.message, job.error.message
