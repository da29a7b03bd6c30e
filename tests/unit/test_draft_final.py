"""Draft, then final: a 480p draft whose sidecar says how to finalize it, and a final that is a job of its own."""

import json
from typing import Any

import pytest

from seedance_pipeline.adapters.job_events import event_detail
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload
from seedance_pipeline.models import JobStatus, Upload
from tests.support.expect import present
from tests.support.fakes import make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
SEEDANCE_2_5 = "dreamina-seedance-2-5-260628"
ARK: dict[str, Any] = {"provider_api": "ark", "api_base_url": "https://ark.ap-southeast.bytepluses.com/api/v3"}


def poll_until_terminal(runtime, store, *, limit=100):
    for _ in range(limit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(j.status.is_terminal for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("jobs never reached a terminal status")


def upload(runtime, storage, key: str, data: bytes, metadata: dict[str, str] | None = None, sequencer: str = "01"):
    storage.add(BUCKET, key, data, metadata or {})
    return accept_upload(Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag="e1"), runtime, owner="s")


def delivered_draft(**settings):
    runtime, store, storage, provider = make_runtime(**{**ARK, **settings})
    outcome = upload(runtime, storage, "uploads/cat.jpg", image_bytes(), {"model": SEEDANCE_2_5, "draft": "true"})
    assert outcome.outcome == "SUBMITTED", outcome.reason
    poll_until_terminal(runtime, store)
    return runtime, store, storage, provider, present(outcome.job_id)


def test_a_draft_is_made_at_480p_and_its_sidecar_and_event_say_how_to_finalize_it():
    runtime, store, storage, provider, draft_id = delivered_draft(resolution="1080p")
    [body] = provider.submissions
    assert body["draft"] is True and body["resolution"] == "480p"
    draft = store.job(draft_id)
    assert draft.status is JobStatus.SUCCEEDED
    sidecar = json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.json")])
    assert sidecar["draft"]["task_id"] == draft.task_id
    assert sidecar["draft"]["finalize"]["command"].startswith(f"seedance-pipeline jobs finalize {draft_id}")
    assert sidecar["draft"]["finalize"]["manifest"]["draft_job"] == draft_id
    assert event_detail(runtime.events.published[-1])["draft"]["finalize"]["manifest"]["draft_job"] == draft_id


@pytest.mark.parametrize("by", ["draft_job", "draft_sidecar"])
def test_a_final_is_one_new_task_carrying_the_draft_task_item_and_both_sidecars_link(by):
    runtime, store, storage, provider, draft_id = delivered_draft()
    draft = store.job(draft_id)
    named = draft_id if by == "draft_job" else "videos/cat.jpg.json"
    final = upload(
        runtime,
        storage,
        "uploads/cat.jpg.final.json",
        json.dumps({by: named, "resolution": "1080p"}).encode(),
        {},
        "02",
    )
    assert final.outcome == "SUBMITTED", final.reason
    poll_until_terminal(runtime, store)

    assert len(provider.submissions) == 2  # one task for the draft, one for the final
    body = provider.submissions[1]
    assert body["content"] == [{"type": "draft_task", "draft_task": {"id": draft.task_id}}]
    assert body["model"] == SEEDANCE_2_5 and body["resolution"] == "1080p" and "draft" not in body
    final_job = store.job(final.job_id)
    assert final_job.status is JobStatus.SUCCEEDED and final_job.job_id != draft_id
    final_sidecar = json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.final.json.json")])
    assert final_sidecar["draft"]["of"]["job_id"] == draft_id
    assert final_sidecar["draft"]["of"]["task_id"] == draft.task_id
    draft_sidecar = json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.json")])
    assert draft_sidecar["final"]["job_id"] == final_job.job_id
    assert draft_sidecar["final"]["video"] == present(final_job.outputs).video_key
    assert event_detail(runtime.events.published[-1])["draft"]["of"]["job_id"] == draft_id


def test_a_final_takes_from_the_budget_like_any_job():
    runtime, store, storage, provider, draft_id = delivered_draft(daily_token_budget=10**9)
    before = sum(store.committed.values())
    upload(runtime, storage, "uploads/cat.jpg.final.json", json.dumps({"draft_job": draft_id}).encode(), {}, "02")
    assert sum(store.committed.values()) > before


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ({"draft_job": "0" * 32}, ["is not a job of this pipeline"]),
        ({"draft_job": "DRAFT", "prompt": "another"}, ["'prompt'", "cannot be set"]),
        ({"draft_job": "DRAFT", "draft_sidecar": "videos/cat.jpg.json"}, ["either 'draft_job' or 'draft_sidecar'"]),
        ({"draft_sidecar": "uploads/cat.jpg"}, ["must name a sidecar under 'videos/'"]),
        ({"draft_sidecar": "videos/none.json"}, ["is not a sidecar"]),
        ({"draft_job": "DRAFT", "resolution": "4k"}, ["'resolution'"]),
    ],
    ids=["unknown-job", "prompt", "both", "outside-outputs", "no-sidecar", "4k"],
)
def test_a_bad_final_manifest_is_rejected_before_any_provider_call(document, fragments):
    runtime, store, storage, provider, draft_id = delivered_draft()
    text = json.dumps(document).replace("DRAFT", draft_id)
    outcome = upload(runtime, storage, "uploads/cat.jpg.final.json", text.encode(), {}, "02")
    assert outcome.outcome == "REJECTED"
    for fragment in fragments:
        assert fragment in present(outcome.reason)
    assert len(provider.submissions) == 1


def test_a_job_that_is_not_a_draft_cannot_be_finalized():
    runtime, store, storage, provider = make_runtime(**ARK)
    plain = upload(runtime, storage, "uploads/dog.jpg", image_bytes(), {"model": SEEDANCE_2_5})
    poll_until_terminal(runtime, store)
    outcome = upload(runtime, storage, "uploads/f.json", json.dumps({"draft_job": plain.job_id}).encode(), {}, "02")
    assert outcome.outcome == "REJECTED"
    assert "is not a draft" in present(outcome.reason)
    assert len(provider.submissions) == 1


def test_a_draft_still_running_cannot_be_finalized_yet():
    runtime, store, storage, provider = make_runtime(**ARK)
    draft = upload(runtime, storage, "uploads/cat.jpg", image_bytes(), {"model": SEEDANCE_2_5, "draft": "true"})
    outcome = upload(runtime, storage, "uploads/f.json", json.dumps({"draft_job": draft.job_id}).encode(), {}, "02")
    assert outcome.outcome == "REJECTED"
    assert "only a delivered draft can be finalized" in present(outcome.reason)


def test_a_draft_on_a_model_without_one_is_refused_and_the_unified_dialect_carries_neither():
    runtime, store, storage, provider = make_runtime(**ARK)
    outcome = upload(runtime, storage, "uploads/a.jpg", image_bytes(), {"draft": "true"})
    assert outcome.outcome == "REJECTED" and "has no draft mode" in present(outcome.reason)
    runtime, store, storage, provider = make_runtime()
    outcome = upload(runtime, storage, "uploads/b.jpg", image_bytes(), {"model": SEEDANCE_2_5, "draft": "true"})
    assert outcome.outcome == "REJECTED" and "unified gateway format cannot carry a draft" in present(outcome.reason)
    outcome = upload(runtime, storage, "uploads/c.json", json.dumps({"draft_job": "x" * 32}).encode(), {}, "03")
    assert outcome.outcome == "REJECTED" and "cannot carry a draft's final" in present(outcome.reason)
    assert provider.submissions == []


def test_linking_a_final_never_switches_back_a_draft_sidecar_a_re_upload_switched_meanwhile():
    """The link is a read, then a write of the draft's sidecar: a re-upload of the draft's image that delivers in
    between switches the sidecar to its own outputs, and the link must not put the draft's set back over them."""
    runtime, store, storage, provider, draft_id = delivered_draft()
    newer = {"job_id": "a-newer-upload", "outputs": {"video": "videos/cat.jpg.newer.mp4", "bucket": BUCKET}}
    reads = storage.read_json_tagged

    def switched_meanwhile(bucket: str, key: str) -> tuple[Any, Any]:
        read = reads(bucket, key)
        if key == "videos/cat.jpg.json" and (read[0] or {}).get("job_id") == draft_id:
            storage.put_json(bucket, key, newer)  # the re-upload's delivery lands between the read and the write
        return read

    storage.read_json_tagged = switched_meanwhile
    final = upload(
        runtime, storage, "uploads/cat.jpg.final.json", json.dumps({"draft_job": draft_id}).encode(), {}, "02"
    )
    poll_until_terminal(runtime, store)

    assert store.job(present(final.job_id)).status is JobStatus.SUCCEEDED
    assert json.loads(storage.uploads[(BUCKET, "videos/cat.jpg.json")]) == newer
    assert any("now names another job; not linked" in note for note in store.job(present(final.job_id)).notes)
