"""A model the catalogue does not know yet works end to end once an operator declares it in ExtraModels."""

from __future__ import annotations

import json

import pytest

from seedance_pipeline.models import JobStatus
from seedance_simulator import validation
from tests.support.images import image_bytes

NEW_MODEL = "doubao-seedance-1-5-lite-260301"  # released by the provider after this version of the pipeline


@pytest.fixture
def provider_with_a_new_model(sim, monkeypatch):
    """The provider (the simulator) offers a model the pipeline's catalogue has never heard of."""
    monkeypatch.setitem(validation.MODELS, NEW_MODEL, validation.ModelInfo(True, 2, "720p", audio=True))
    return sim


@pytest.mark.parametrize("dialect", ["unified", "ark"], indirect=True)
def test_an_operator_declared_model_is_sent_and_its_video_delivered(make_pipeline, provider_with_a_new_model):
    declared = [{"id": NEW_MODEL, "modes": ["first_frame", "first_and_last_frame"], "durations": "4-12", "audio": True}]
    pipeline = make_pipeline(EXTRA_MODELS=json.dumps(declared))
    pipeline.submit(pipeline.upload("uploads/new-model.jpg", image_bytes(), {"model": NEW_MODEL, "resolution": "480p"}))
    job = pipeline.run_until_terminal(timeout=60)["uploads/new-model.jpg"]
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.request.model == NEW_MODEL
    assert provider_with_a_new_model.counters.tasks_created == 1


def test_without_the_declaration_the_same_upload_is_refused_before_paying(pipeline, provider_with_a_new_model):
    outcome = pipeline.submit(pipeline.upload("uploads/new-model.jpg", image_bytes(), {"model": NEW_MODEL}))
    assert outcome["outcomes"][0]["outcome"] == "REJECTED"
    assert "ExtraModels" in pipeline.jobs()["uploads/new-model.jpg"].error.message
    assert provider_with_a_new_model.counters.tasks_created == 0


@pytest.mark.parametrize("dialect", ["ark"], indirect=True)
def test_a_request_the_model_cannot_serve_is_rejected_before_paying_with_the_reason(make_pipeline, sim):
    pipeline = make_pipeline(SERVICE_TIER="flex")
    uploads = {
        # No flex (offline) tier for the 2.0 family; 2.0 fast makes 480p and 720p only.
        "uploads/flex-on-2-0.jpg": ({"model": "doubao-seedance-2-0-260128"}, "has no flex (offline) tier"),
        "uploads/fast-1080p.jpg": (
            {"model": "doubao-seedance-2-0-fast-260128", "resolution": "1080p"},
            "offers 480p, 720p, not 1080p",
        ),
        # Retired on BytePlus on 2026-11-11 (the BytePlus spelling of 1.5 pro).
        "uploads/retired.jpg": ({"model": "seedance-1-5-pro-251215"}, "use dreamina-seedance-2-0-mini-260615 instead"),
    }
    for key, (metadata, _) in uploads.items():
        outcome = pipeline.submit(pipeline.upload(key, image_bytes(), metadata))
        assert outcome["outcomes"][0]["outcome"] == "REJECTED"
    jobs = pipeline.jobs()
    for key, (_, reason) in uploads.items():
        assert reason in jobs[key].error.message
    assert sim.counters.tasks_created == 0
