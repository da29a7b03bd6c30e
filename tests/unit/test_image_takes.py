"""S3 metadata `takes` on a plain image, on the fakes: N jobs of the image's one request with N seeds, outputs and a
report named per take; without it (or with 1) the single-upload path exactly as before; a bad value refused."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.logic.polling import run_poll
from seedance_pipeline.logic.submission import accept_upload, submit_job
from seedance_pipeline.models import Job, JobStatus, Upload
from seedance_pipeline.rules.image_takes import metadata_takes
from seedance_pipeline.rules.keys import job_id_for
from seedance_pipeline.rules.manifests import MAX_TAKES
from tests.support.expect import present
from tests.support.fakes import FakeStorage, make_runtime
from tests.support.images import image_bytes

BUCKET = "in-bucket"
KEY = "uploads/pets/kitten.jpg"


def upload(key=KEY, etag="e1", sequencer="00C1"):
    return Upload(bucket=BUCKET, key=key, sequencer=sequencer, etag=etag)


def drain(runtime, store, *, limit=100):
    for _ in range(limit):
        run_poll(runtime, owner="p", time_left=lambda: 300.0)
        if all(j.status.is_terminal and not j.finalize_pending for j in store.jobs()):
            return
        runtime.clock.advance(30)
    raise AssertionError("the jobs never drained")


def report_lines(storage, key="videos/pets/kitten.jpg.report.jsonl"):
    return [json.loads(line) for line in storage.uploads[(BUCKET, key)].decode().splitlines()]


def test_an_image_with_metadata_takes_makes_one_job_per_take_with_its_overrides_and_seeds_and_a_report():
    runtime, store, storage, provider = make_runtime()
    metadata = {"takes": "3", "seed": "7", "prompt": "The kitten yawns", "resolution": "720p", "duration": "10"}
    storage.add(BUCKET, KEY, image_bytes(), metadata)
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == "WAITING" and "3 videos queued" in present(outcome.reason)
    assert outcome.job_id == job_id_for(upload()), "the batch is named by the upload's identity"
    assert provider.submissions == [], "the submit function only writes the takes"

    drain(runtime, store)
    assert sorted(int(body["seed"]) for body in provider.submissions) == [7, 8, 9]
    assert {(body["prompt"], body["resolution"], body["duration"]) for body in provider.submissions} == {
        ("The kitten yawns", "720p", 10)
    }
    lines = report_lines(storage)
    assert [(x["id"], x["take"], x["status"]) for x in lines] == [("kitten", t, "SUCCEEDED") for t in (1, 2, 3)]
    assert [x["sidecar"] for x in lines] == [
        f"s3://{BUCKET}/videos/pets/kitten.jpg/kitten.take{t}.json" for t in (1, 2, 3)
    ]
    assert all(
        x["video"].startswith(f"s3://{BUCKET}/videos/pets/kitten.jpg/kitten.take{t}.")
        for t, x in zip((1, 2, 3), lines, strict=True)
    )
    assert len(runtime.events.batches) == 1 and runtime.events.batches[0]["counts"] == {"SUCCEEDED": 3}


def test_without_a_metadata_seed_each_take_gets_its_own_seed_and_a_repeat_gets_the_same_ones():
    seeds = []
    for _ in range(2):
        runtime, store, storage, provider = make_runtime()
        storage.add(BUCKET, KEY, image_bytes(), {"takes": "2"})
        accept_upload(upload(), runtime, owner="s")
        drain(runtime, store)
        seeds.append(sorted(int(body["seed"]) for body in provider.submissions))
    assert len(set(seeds[0])) == 2 and seeds[0][1] - seeds[0][0] == 1
    assert seeds[0] == seeds[1]


@pytest.mark.parametrize("metadata", [{}, {"takes": "1"}, {"takes": " 1 ", "prompt": "p"}])
def test_an_image_without_takes_or_with_one_is_the_single_upload_it_always_was(metadata):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), metadata)
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == JobStatus.SUBMITTED and outcome.job_id == job_id_for(upload())
    assert len(provider.submissions) == 1 and store.get_batch(job_id_for(upload())) is None
    # One HeadObject for the metadata, then the single path's one read of the image, as before.
    assert (storage.heads, storage.reads) == (1, 1)
    job = present(store.get(job_id_for(upload())))
    assert job.batch is None and job.source_key == KEY


def test_batch_files_and_manifests_cost_no_head_request():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/pets/a.jpg", image_bytes())
    storage.add(BUCKET, "uploads/pets/m.json", b'{"first_frame": "a.jpg"}')
    storage.add(BUCKET, "uploads/pets/b.csv", b"id,image\r\nx,a.jpg\r\n")
    accept_upload(upload("uploads/pets/m.json"), runtime, owner="s")
    accept_upload(upload("uploads/pets/b.csv"), runtime, owner="s")
    assert storage.heads == 0


@pytest.mark.parametrize("value", ["0", "9", str(MAX_TAKES + 1), "abc", "", "2.5", "-2", "+2", "٣"])
def test_a_bad_takes_value_rejects_the_upload_naming_the_takes_metadata(value):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), {"takes": value})
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == JobStatus.REJECTED
    reason = present(outcome.reason)
    assert "metadata 'takes'" in reason and repr(value) in reason and f"1 to {MAX_TAKES}" in reason
    job = present(store.get(present(outcome.job_id)))
    assert present(job.error).code == ErrorCode.INVALID_METADATA
    assert [j.job_id for j in store.jobs()] == [job.job_id], "nothing was queued"
    drain(runtime, store)
    assert provider.submissions == []


def test_takes_with_a_bad_override_rejects_the_upload_naming_that_field_before_anything_is_queued():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), {"takes": "2", "resolution": "9000p"})
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == JobStatus.REJECTED and "metadata 'resolution'" in present(outcome.reason)
    assert len(store.jobs()) == 1 and provider.submissions == []


@pytest.mark.parametrize("seed", ["-1", "4294967295"])
def test_an_ark_seed_no_take_can_add_to_is_refused_with_takes(seed):
    """Ark takes seeds from -1 ("random") to 2^32-1; take N uses seed + N - 1, which must stay a seed every
    dialect takes."""
    runtime, store, storage, provider = make_runtime(provider_api="ark")
    storage.add(BUCKET, KEY, image_bytes(), {"takes": "2", "seed": seed})
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == JobStatus.REJECTED
    assert f"metadata 'seed' is '{seed}'; with 'takes' it must be a whole number from 0 to" in present(outcome.reason)


def test_takes_on_an_empty_image_rejects_the_upload_once_by_its_size():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, b"", {"takes": "2"})
    outcome = accept_upload(upload(), runtime, owner="s")
    assert outcome.outcome == JobStatus.REJECTED and "empty" in present(outcome.reason)
    assert len(store.jobs()) == 1


@pytest.mark.parametrize(
    ("key", "body", "named"),
    [
        ("uploads/pets/m.json", b'{"first_frame": "a.jpg"}', "a manifest"),
        ("uploads/pets/m2.json", b'{"first_frame": "a.jpg", "takes": 2}', "a manifest"),
        ("uploads/pets/b.csv", b"id,image\r\nx,a.jpg\r\n", "a batch file"),
    ],
)
def test_metadata_takes_on_something_that_says_its_own_takes_is_refused_by_name(key, body, named):
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, "uploads/pets/a.jpg", image_bytes())
    storage.add(BUCKET, key, body, {"takes": "3"})
    outcome = accept_upload(upload(key), runtime, owner="s")
    assert outcome.outcome == JobStatus.REJECTED
    assert "metadata 'takes'" in present(outcome.reason) and named in present(outcome.reason)
    assert len(store.jobs()) == 1
    drain(runtime, store)
    assert provider.submissions == []


def test_a_duplicate_delivery_of_the_images_event_makes_no_take_twice():
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), {"takes": "2"})
    first = accept_upload(upload(), runtime, owner="a")
    writes = [op for op in store.operations if op.startswith("put_new_job")]
    again = accept_upload(upload(), runtime, owner="b")
    assert again.outcome == "DUPLICATE" and again.job_id == first.job_id
    assert [op for op in store.operations if op.startswith("put_new_job")] == writes
    drain(runtime, store)
    assert len(provider.submissions) == 2 and len(runtime.events.batches) == 1


def test_an_image_asking_for_takes_that_reaches_the_single_path_is_refused_not_made_once():
    """A backfill (or a retry) turns an object into a single job without its event: it must not make one video
    where the metadata asked for several."""
    runtime, store, storage, provider = make_runtime()
    storage.add(BUCKET, KEY, image_bytes(), {"takes": "4"})
    now = runtime.clock()
    job = Job(
        job_id="b" * 32,
        status=JobStatus.WAITING,
        source_bucket=BUCKET,
        source_key=KEY,
        source_etag="e1",
        created_at=now,
        updated_at=now,
        next_check_at=now,
    )
    store.claim(job, due_shard="0")
    leased = store.acquire_lease(job, owner="p", now=now, lease_seconds=120)
    done = submit_job(leased, runtime, owner="p")
    assert done.status is JobStatus.REJECTED and "metadata 'takes' asks for 4 videos" in present(done.error).message
    assert provider.submissions == []


class HeadRefused(FakeStorage):
    """S3 refusing HeadObject (a missing permission, an outage past boto's retries) while reads still work."""

    def head(self, bucket, key, *, version_id=None, etag=None):
        self.heads += 1
        raise PermissionError("AccessDenied on HeadObject")


@pytest.mark.parametrize(("metadata", "status"), [({}, JobStatus.SUBMITTED), ({"takes": "2"}, JobStatus.REJECTED)])
def test_a_fault_reading_the_metadata_never_loses_the_upload_nor_makes_one_video_of_several(metadata, status):
    runtime, store, storage, provider = make_runtime(storage=HeadRefused())
    storage.add(BUCKET, KEY, image_bytes(), metadata)
    outcome = accept_upload(upload(), runtime, owner="s")
    assert storage.heads == 1 and outcome.outcome == status
    if status is JobStatus.REJECTED:
        assert "metadata 'takes' asks for 2 videos" in present(outcome.reason)
        assert "upload the image again" in present(outcome.reason)
        assert provider.submissions == []


@given(st.text(max_size=6))
def test_metadata_takes_is_a_whole_number_in_range_or_a_refusal_naming_it(raw):
    text = raw.strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_TAKES:
        assert metadata_takes({"takes": raw}) == int(text)
    else:
        with pytest.raises(InvalidInput) as caught:
            metadata_takes({"takes": raw})
        assert "metadata 'takes'" in caught.value.message and repr(raw) in caught.value.message
        assert caught.value.code == ErrorCode.INVALID_METADATA
    assert metadata_takes({"prompt": raw}) is None


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_every_whole_number_outside_one_to_max_takes_is_refused(number):
    if 1 <= number <= MAX_TAKES:
        assert metadata_takes({"Takes": str(number)}) == number
    else:
        with pytest.raises(InvalidInput, match="metadata 'takes'"):
            metadata_takes({"Takes": str(number)})
