from seedance_pipeline.models import Upload
from seedance_pipeline.rules.keys import ignore_reason, job_id_for, output_keys
from seedance_pipeline.settings import Settings

SETTINGS = Settings(jobs_table_name="t", input_bucket="b")


def test_outputs_mirror_the_input_path_under_the_output_prefix():
    keys = output_keys("uploads/My Photos/kitten (1).jpg", SETTINGS)
    assert keys.video == "videos/My Photos/kitten (1).mp4"
    assert keys.last_frame == "videos/My Photos/kitten (1).last-frame.png"
    assert keys.sidecar == "videos/My Photos/kitten (1).json"


def test_outputs_of_a_top_level_file_and_a_name_without_extension():
    assert output_keys("uploads/cat.png", SETTINGS).video == "videos/cat.mp4"
    assert output_keys("uploads/a.b.c.webp", SETTINGS).video == "videos/a.b.c.mp4"
    assert output_keys("uploads/noext", SETTINGS).video == "videos/noext.mp4"


def test_keys_outside_the_input_prefix_under_the_output_prefix_and_folders_are_ignored():
    assert ignore_reason("videos/cat.mp4", SETTINGS) is not None
    assert ignore_reason("elsewhere/cat.jpg", SETTINGS) is not None
    assert ignore_reason("uploads/folder/", SETTINGS) == "a folder placeholder"
    assert ignore_reason("uploads/", SETTINGS) is not None
    assert ignore_reason("uploads/cat.jpg", SETTINGS) is None


def test_output_prefix_inside_the_input_prefix_is_still_ignored():
    nested = Settings(jobs_table_name="t", input_prefix="media/", output_prefix="media/videos/")
    assert ignore_reason("media/videos/cat.mp4", nested) is not None
    assert ignore_reason("media/cat.jpg", nested) is None


def test_job_id_is_shared_by_duplicate_deliveries_and_new_for_a_reupload():
    first = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281E5")
    duplicate = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281E5", etag="x")
    reupload = Upload(bucket="b", key="uploads/a.jpg", sequencer="0055AED6DCD90281F0")
    versioned = Upload(bucket="b", key="uploads/a.jpg", version_id="v2", sequencer="0055AED6DCD90281E5")
    assert job_id_for(first) == job_id_for(duplicate)
    assert job_id_for(first) != job_id_for(reupload)
    assert job_id_for(versioned) != job_id_for(first)
