"""What only the native Ark dialect can do, against the simulator over real HTTP: find a task whose creation
answer was lost, and cancel a queued task whose job has given up on it."""

from __future__ import annotations

import pytest

from seedance_pipeline.models import JobStatus
from tests.support.images import image_bytes


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_lost_ark_creation_answer_is_found_in_the_task_list_and_the_job_succeeds_with_one_task(pipeline, sim):
    sim.knobs.lose_answers_next = 1  # the task is created and billed; the answer never arrives
    # No seed set: the job sends its own (derived from its id), and that is how its task is told apart from the
    # shared simulator's other tasks, which show neither prompt, images nor callback_url.
    upload = pipeline.upload("uploads/lost.jpg", image_bytes())
    outcome = pipeline.submit(upload)["outcomes"][0]
    assert outcome["outcome"] == "SUBMITTED", outcome
    job = pipeline.run_until_terminal(timeout=60)["uploads/lost.jpg"]
    assert job.status is JobStatus.SUCCEEDED
    assert sim.counters.tasks_created == 1 and sim.counters.listed >= 1
    assert any("task list" in note or "found" in note for note in job.notes), job.notes
    assert sim.task(job.task_id).seed == job.request.seed  # the seed on record is the one that made the video


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_lost_answer_never_adopts_an_identical_uploads_task(pipeline, sim):
    """The issue's sequence over real HTTP, on the defaults (callbacks off, ratio adaptive, no seed): upload B is
    sent; seconds later upload A gets a 502 and no task is made. A stays uncertain; B's task stays B's alone, and
    B's video is B's. (Callbacks on add a callback_url the list never shows: test_ark_jobs, test_ark_dialect.)"""
    # Settings no other test of the session uses, so B's task is the only other one the shared simulator lists.
    settings = {"resolution": "480p", "duration": "3"}
    pipeline.submit(pipeline.upload("uploads/b.jpg", image_bytes(), settings))
    sim.knobs.fault_methods, sim.knobs.server_errors_next, sim.knobs.server_error_status = "POST", 1, 502
    outcome = pipeline.submit(pipeline.upload("uploads/a.jpg", image_bytes(), settings))["outcomes"][0]
    assert outcome["outcome"] == "FAILED", outcome
    jobs = pipeline.run_until_terminal(timeout=60)
    a, b = jobs["uploads/a.jpg"], jobs["uploads/b.jpg"]
    assert a.task_id is None and a.error.code == "SUBMISSION_UNCERTAIN", (a.task_id, a.error)
    assert b.status is JobStatus.SUCCEEDED and sim.counters.tasks_created == 1
    assert sim.counters.deletes == 0


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
