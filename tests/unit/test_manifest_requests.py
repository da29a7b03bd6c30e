"""A manifest's request is checked against the model catalogue for the image mode the manifest uses."""

import json

import pytest

from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import Upload
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
LITE = "doubao-seedance-1-0-lite-i2v-250428"
PRO = "doubao-seedance-1-0-pro-250528"
PRO_FAST = "doubao-seedance-1-0-pro-fast-251015"
SEEDANCE_2 = "doubao-seedance-2-0-260128"


def submit_manifest(document: dict, *, images: int = 9, **settings):
    runtime, store, storage, provider = make_runtime(**settings)
    for n in range(images):
        storage.add(BUCKET, f"uploads/clips/_f/{n}.png", image_bytes(fmt="PNG"))
    storage.add(BUCKET, "uploads/clips/job.json", json.dumps(document).encode())
    outcome = accept_upload(Upload(bucket=BUCKET, key="uploads/clips/job.json", sequencer="01"), runtime, owner="o")
    return outcome, store.get(present(outcome.job_id)), provider


def frames(count: int) -> list[str]:
    return [f"_f/{n}.png" for n in range(count)]


def test_first_and_last_frames_are_sent_in_order_on_a_model_that_takes_them():
    outcome, job, provider = submit_manifest({"first_frame": "_f/0.png", "last_frame": "_f/1.png", "model": PRO})
    assert outcome.outcome == "SUBMITTED", outcome.reason
    [body] = provider.submissions
    assert body["model"] == PRO
    assert [url.split("?")[0].rsplit("/", 1)[-1] for url in body["images"]] == ["0.png", "1.png"]


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        (
            {"first_frame": "_f/0.png", "last_frame": "_f/1.png", "model": PRO_FAST},
            [PRO_FAST, "takes a first frame only, not a first and a last frame", LITE],
        ),
        # The default model (pro) takes no reference images: the message says which models do.
        ({"reference_images": frames(2)}, [PRO, "not reference images", LITE, SEEDANCE_2]),
        ({"reference_images": frames(5), "model": LITE}, [LITE, "1-4 reference images, not 5"]),
        (
            {"reference_images": frames(2), "model": LITE, "resolution": "1080p"},
            [LITE, "480p, 720p with reference images, not 1080p"],
        ),
        ({"first_frame": "_f/0.png", "duration": 7}, ["the manifest's 'duration'", "allowed: 5 or 10 (seconds)"]),
        ({"first_frame": "_f/0.png", "generate_audio": True}, [PRO, "has no audio"]),
        ({"first_frame": "_f/0.png", "model": "acme-video-9"}, ["'model'", "acme-video-9", "ExtraModels"]),
    ],
    ids=[
        "pro-fast-two-frames",
        "pro-references",
        "lite-five-references",
        "lite-references-1080p",
        "duration",
        "audio",
        "unknown-model",
    ],
)
def test_a_manifest_the_model_cannot_serve_is_rejected_before_any_provider_call(document, fragments):
    outcome, job, provider = submit_manifest(document)
    assert outcome.outcome == "REJECTED"
    assert job.error.code == "INVALID_MANIFEST"
    for fragment in fragments:
        assert fragment in job.error.message
    assert provider.submissions == []


def test_nine_reference_images_go_to_seedance_2_at_the_length_the_gateway_offers():
    outcome, job, provider = submit_manifest({"reference_images": frames(9), "model": SEEDANCE_2, "duration": 10})
    assert outcome.outcome == "SUBMITTED", outcome.reason
    [body] = provider.submissions
    assert len(body["images"]) == 9 and body["duration"] == 10


def test_ten_reference_images_are_too_many_even_for_seedance_2():
    outcome, job, provider = submit_manifest({"reference_images": [*frames(9), "_f/0.png"], "model": SEEDANCE_2})
    assert outcome.outcome == "REJECTED" and "1-9 reference images, not 10" in job.error.message
