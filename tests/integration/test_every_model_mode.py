"""Every model of the catalogue, in every image mode, on both dialects over real HTTP: a mode the model takes reaches
the simulator (which refuses what the service refuses) and is accepted; a mode it lacks is REJECTED before any call.
The catalogue is the pipeline's side of the contract, the simulator the service's: this is where they meet."""

from __future__ import annotations

import json
from typing import Any

import pytest

from seedance_pipeline.rules.model_catalogue import BUILT_IN_MODELS
from seedance_pipeline.rules.model_spec import ImageMode
from tests.integration.conftest import DIALECTS
from tests.support.images import image_bytes

pytestmark = pytest.mark.integration

MANIFESTS: dict[ImageMode, dict[str, Any]] = {
    ImageMode.FIRST_FRAME: {"first_frame": "_frames/start.png"},
    ImageMode.FIRST_AND_LAST: {"first_frame": "_frames/start.png", "last_frame": "_frames/end.png"},
    ImageMode.REFERENCE_IMAGES: {"reference_images": ["_frames/start.png", "_frames/end.png"]},
}


@pytest.mark.parametrize("dialect", DIALECTS, indirect=True)
def test_every_model_is_sent_in_each_mode_it_takes_and_refused_before_paying_in_the_others(
    make_pipeline, sim, stack, dialect: str
) -> None:
    sim.knobs.video_body_factory = lambda task: (0, [])  # only whether the service takes the request matters here
    pipeline = make_pipeline(MAX_IN_FLIGHT="100")
    s3 = stack.client("s3")
    for name, colour in (("start", (10, 80, 160)), ("end", (200, 90, 20))):
        s3.put_object(
            Bucket=stack.bucket, Key=f"uploads/models/_frames/{name}.png", Body=image_bytes(800, 450, "PNG", colour)
        )

    wrong: list[str] = []
    checked = 0
    for spec in BUILT_IN_MODELS:
        if spec.text_only:
            continue
        for mode, frames in MANIFESTS.items():
            before = sim.counters.submit
            manifest = {**frames, "model": spec.id, "resolution": "480p", "ratio": "16:9", "duration": 5}
            key = f"uploads/models/{spec.id}.{mode.value}.{dialect}.json"
            (outcome,) = pipeline.submit(pipeline.upload(key, json.dumps(manifest).encode()))["outcomes"]
            sent = sim.counters.submit - before
            checked += 1
            if mode in spec.modes and (outcome["outcome"] != "SUBMITTED" or sent != 1):
                wrong.append(f"{spec.id} {mode.value}: {outcome['outcome']} ({outcome.get('reason')}), {sent} POSTs")
            elif mode not in spec.modes and (outcome["outcome"] != "REJECTED" or sent != 0):
                wrong.append(f"{spec.id} {mode.value} should be refused: {outcome['outcome']}, {sent} POSTs")
    assert checked >= 3 * 9
    assert wrong == []
