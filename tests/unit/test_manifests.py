import json

import pytest

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.keys import ignore_reason
from seedance_pipeline.rules.manifests import frame_keys, parse_manifest
from seedance_pipeline.settings import Settings
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL)
LITE = "doubao-seedance-1-0-lite-i2v-250428"


def manifest(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_a_good_manifest_gives_its_overrides_in_metadata_form():
    parsed = parse_manifest(
        manifest(
            first_frame="a.png",
            last_frame="b.png",
            model=LITE,
            duration=10,
            seed=7,
            camerafixed=True,
            prompt="镜头缓慢推进",
        )
    )
    assert parsed.overrides() == {
        "model": LITE,
        "duration": "10",
        "seed": "7",
        "camerafixed": "true",
        "prompt": "镜头缓慢推进",
    }


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (manifest(prompt="no frame"), "'first_frame'"),
        (manifest(first_frame="a.png", duration="7"), "'duration'"),
        (manifest(first_frame="a.png", duration=0), "'duration'"),
        (manifest(first_frame="a.png", resolution="4k"), "'resolution'"),
        (manifest(first_frame="a.png", seed=-1), "'seed'"),
        (manifest(first_frame="a.png", seed="12"), "'seed'"),
        (manifest(first_frame="a.png", watermark="yes"), "'watermark'"),
        (manifest(first_frame="a.png", colour="red"), "'colour' is not a known field"),
        (manifest(first_frame="a.png", model="doubao-seedance-1-0-lite-t2v-250428"), "'model'"),
        (manifest(first_frame="a.png", reference_images=["r.png"]), "not both"),
        (manifest(last_frame="b.png", model=LITE), "'first_frame'"),
        (manifest(first_frame="a.png", reference_images=[]), "'reference_images'"),
        (b"x" * 70_000, "over 64 KB"),
        (b"[" * 60_000, "nests 60000 levels deep"),
        (b'{"first_frame": "a.png", "prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests 5001 levels deep"),
        (b'{"first_frame": "a.png", "seed": ' + b"9" * 5000 + b"}", "not valid UTF-8 JSON"),
        (b'{"first_frame": "a.png", "seed": NaN}', "NaN is not a JSON value"),
        (b'{"first_frame": "\\ud800.png"}', "not valid Unicode"),
        (b'{"first_frame": "a.png", "prompt": "\\udfff"}', "not valid Unicode"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
    ],
)
def test_bad_manifests_are_refused_with_field_level_messages(document, named):
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(document)
    assert caught.value.code == "INVALID_MANIFEST"
    assert named in caught.value.message


def test_brackets_inside_strings_do_not_count_as_nesting():
    prompt = "[[[[{{{{" * 100 + '\\"[['
    assert parse_manifest(manifest(first_frame="a.png", prompt=prompt)).prompt == prompt


def test_a_frame_key_over_s3s_length_limit_is_refused():
    parsed = parse_manifest(manifest(first_frame="a" * 1100 + ".png"))
    with pytest.raises(InvalidInput, match="1024-byte limit") as caught:
        frame_keys("uploads/intro.json", parsed, SETTINGS)
    assert caught.value.code == "INVALID_MANIFEST"


def test_frames_resolve_relative_to_the_manifest_folder_and_stay_under_the_input_prefix():
    parsed = parse_manifest(manifest(first_frame="_frames/a.png", last_frame="uploads/other/b.png", model=LITE))
    assert frame_keys("uploads/clips/intro.json", parsed, SETTINGS) == [
        "uploads/clips/_frames/a.png",
        "uploads/other/b.png",
    ]
    escaping = parse_manifest(manifest(first_frame="../../secrets/a.png"))
    with pytest.raises(InvalidInput, match="must name an image under"):
        frame_keys("uploads/clips/intro.json", escaping, SETTINGS)


def test_frames_in_underscore_folders_are_not_jobs_of_their_own():
    assert ignore_reason("uploads/clips/_frames/a.png", SETTINGS) is not None
    assert ignore_reason("uploads/clips/intro.json", SETTINGS) is None


def test_reference_images_resolve_like_frames_and_keep_their_order():
    parsed = parse_manifest(manifest(reference_images=["_refs/a.png", "uploads/refs/b.png", "c.png"], model=LITE))
    assert parsed.mode == "reference_images"
    assert frame_keys("uploads/clips/intro.json", parsed, SETTINGS) == [
        "uploads/clips/_refs/a.png",
        "uploads/refs/b.png",
        "uploads/clips/c.png",
    ]
    assert "reference_images" not in parsed.overrides()
    escaping = parse_manifest(manifest(reference_images=["a.png", "../../../etc/b.png"]))
    with pytest.raises(InvalidInput, match=r"'reference_images\[1\]'"):
        frame_keys("uploads/clips/intro.json", escaping, SETTINGS)


def test_a_manifest_names_its_mode_by_the_images_it_gives():
    assert parse_manifest(manifest(first_frame="a.png")).mode == "first_frame"
    assert parse_manifest(manifest(first_frame="a.png", last_frame="b.png")).mode == "first_and_last_frame"
