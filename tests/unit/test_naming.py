import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Upload
from seedance_pipeline.rules.keys import check_output_keys, ignore_reason, job_id_for, output_keys, sidecar_key
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, input_bucket="b")


JOB = "0123456789abcdef0123456789abcdef"


def test_outputs_mirror_the_input_path_under_the_output_prefix():
    keys = output_keys("uploads/My Photos/kitten (1).jpg", SETTINGS, JOB)
    assert keys.video == "videos/My Photos/kitten (1).jpg.0123456789ab.mp4"
    assert keys.last_frame == "videos/My Photos/kitten (1).jpg.0123456789ab.last-frame.png"
    assert keys.sidecar == "videos/My Photos/kitten (1).jpg.json"


def test_outputs_of_a_top_level_file_and_a_name_without_extension():
    assert output_keys("uploads/cat.png", SETTINGS, JOB).video == "videos/cat.png.0123456789ab.mp4"
    assert output_keys("uploads/a.b.c.webp", SETTINGS, JOB).video == "videos/a.b.c.webp.0123456789ab.mp4"
    assert output_keys("uploads/noext", SETTINGS, JOB).video == "videos/noext.0123456789ab.mp4"
    assert sidecar_key("uploads/noext", SETTINGS) == "videos/noext.json"


def test_uploads_that_differ_only_in_extension_never_share_an_output_object():
    sources = ["uploads/a.jpg", "uploads/a.png", "uploads/a.json", "uploads/a", "uploads/a.jpg.json"]
    written = [
        key
        for number, source in enumerate(sources)
        for key in output_keys(source, SETTINGS, f"{number:032x}").model_dump().values()
    ]
    assert len(written) == len(set(written)) == 3 * len(sources)


def test_two_jobs_of_one_key_write_different_media_and_share_only_the_sidecar():
    first = output_keys("uploads/a.jpg", SETTINGS, "a" * 32)
    second = output_keys("uploads/a.jpg", SETTINGS, "b" * 32)
    assert {first.video, first.last_frame}.isdisjoint({second.video, second.last_frame})
    assert first.sidecar == second.sidecar == "videos/a.jpg.json"


def test_output_keys_over_s3s_limit_are_refused_with_the_limit_named():
    check_output_keys("uploads/" + "é" * 400 + ".jpg", SETTINGS)  # 800 bytes of name: fits
    with pytest.raises(InvalidInput) as refused:
        check_output_keys("uploads/" + "é" * 500 + ".jpg", SETTINGS)  # 500 characters, 1,000 bytes
    assert refused.value.code == ErrorCode.OUTPUT_KEY_TOO_LONG
    assert "1024 bytes" in refused.value.message


def test_keys_outside_the_input_prefix_under_the_output_prefix_and_folders_are_ignored():
    assert ignore_reason("videos/cat.mp4", SETTINGS) is not None
    assert ignore_reason("elsewhere/cat.jpg", SETTINGS) is not None
    assert ignore_reason("uploads/folder/", SETTINGS) == "a folder placeholder"
    assert ignore_reason("uploads/", SETTINGS) is not None
    assert ignore_reason("uploads/cat.jpg", SETTINGS) is None


@pytest.mark.parametrize(
    ("input_prefix", "output_prefix"),
    [("media/", "media/videos/"), ("media/uploads/", "media/"), ("same/", "same/"), ("", "videos/"), ("in/", "")],
)
def test_prefixes_that_contain_each_other_are_refused_at_cold_start(input_prefix, output_prefix):
    with pytest.raises(ValidationError, match="neither may start with the other"):
        Settings(jobs_table_name="t", api_base_url=GATEWAY_URL, input_prefix=input_prefix, output_prefix=output_prefix)


def test_prefixes_that_only_share_a_beginning_are_accepted():
    settings = Settings(
        jobs_table_name="t", api_base_url=GATEWAY_URL, input_prefix="media/in/", output_prefix="media/out/"
    )
    assert ignore_reason("media/in/cat.jpg", settings) is None
    assert ignore_reason("media/out/cat.jpg.json", settings) is not None


def test_job_id_is_shared_by_duplicate_deliveries_and_new_for_a_reupload():
    first = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281E5")
    duplicate = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281E5", etag="x")
    reupload = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281F0")
    versioned = Upload(bucket="b", key="uploads/a.jpg", version_id="v2", sequencer="0055AED6DCD90281E5")
    assert job_id_for(first) == job_id_for(duplicate)
    assert job_id_for(first) != job_id_for(reupload)
    assert job_id_for(versioned) != job_id_for(first)


_NAME = st.text(st.sampled_from("ab.-_ é/"), min_size=1, max_size=12).filter(lambda n: not n.endswith("/"))
_JOB = st.text(st.sampled_from("0123456789abcdef"), min_size=32, max_size=32)


@given(first=_NAME, second=_NAME, first_job=_JOB, second_job=_JOB)
def test_no_two_uploads_ever_share_an_output_object(first, second, first_job, second_job):
    ours = set(output_keys("uploads/" + first, SETTINGS, first_job).model_dump().values())
    theirs = set(output_keys("uploads/" + second, SETTINGS, second_job).model_dump().values())
    if first != second:
        assert ours.isdisjoint(theirs)
    elif first_job[:12] != second_job[:12]:
        assert ours & theirs == {sidecar_key("uploads/" + first, SETTINGS)}  # the one pointer, replaced whole
