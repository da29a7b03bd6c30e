"""Generated: whatever a `.json` upload holds, the manifest path gives a job's frames and request or INVALID_MANIFEST.

Rejections further along (a prompt's encoded word, a bad choice) come from the metadata rules and are
INVALID_METADATA: a domain error all the same.
"""

import json
from collections import Counter
from typing import Any, get_args

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.models import Ratio, Resolution
from seedance_pipeline.rules.manifests import MAX_MANIFEST_DEPTH, JobManifest, frame_keys, parse_manifest
from seedance_pipeline.rules.model_catalogue import BUILT_IN_MODELS
from seedance_pipeline.rules.video_request import MAX_SEED, resolve_request
from seedance_pipeline.settings import Settings
from tests.support.domain_answers import answer_or_refusal
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL)
FIELDS = list(JobManifest.model_fields)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["a.png", "_frames/a.png", "uploads/b.png", "../../x.png", "/uploads/c.png", "720p", "16:9"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
# Right field names with any values: what gets furthest into the model's validation.
MANIFEST_SHAPED = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | SCALARS, max_size=len(FIELDS))
SURROGATE_ESCAPE = st.integers(0xD800, 0xDFFF).map(lambda point: f'"\\u{point:04x}"')
_OPENERS = st.sampled_from(["[", '{"a": ', '{"first_frame": "a.png", "prompt": '])


def _deep(opener: str, depth: int) -> bytes:
    closer = "]" if opener == "[" else "}"
    return (opener * depth + "1" + closer * depth).encode()


DEEP = st.builds(_deep, _OPENERS, st.integers(0, 20_000))


def assert_manifest_path_answers(data: bytes) -> str:
    """Checks the answer at each step and says how far the input got: "parser", "frames" or "request" (refused
    there), or "accepted" (a job's frames and request)."""
    parsed = answer_or_refusal(lambda: parse_manifest(data))
    if isinstance(parsed, InvalidInput):
        assert parsed.code == ErrorCode.INVALID_MANIFEST and parsed.message
        return "parser"
    assert isinstance(parsed, JobManifest)
    keys = answer_or_refusal(lambda: frame_keys("uploads/clip/job.json", parsed, SETTINGS))
    if isinstance(keys, InvalidInput):
        assert keys.code == ErrorCode.INVALID_MANIFEST
    else:
        assert all(key.startswith(SETTINGS.input_prefix) for key in keys)
        assert all(len(key.encode("utf-8")) <= 1024 for key in keys)
    request = answer_or_refusal(lambda: resolve_request(SETTINGS, parsed.overrides()))
    if isinstance(request, InvalidInput):
        assert request.code == ErrorCode.INVALID_METADATA
    else:
        json.dumps(request.model_dump(), ensure_ascii=False).encode("utf-8")
    if isinstance(keys, InvalidInput):
        return "frames"
    return "request" if isinstance(request, InvalidInput) else "accepted"


# Valid manifests, field by field from the model's own constraints, so inputs get past the parser.
IMAGE_PATHS = st.sampled_from(
    ["a.png", "_frames/a.png", "uploads/b.png", "sub/c.webp", "../../x.png", "/etc/x.png"]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-./", min_size=1, max_size=30)
MODELS = st.sampled_from(sorted({name for spec in BUILT_IN_MODELS if not spec.text_only for name in spec.ids}))
OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.text(max_size=80),
    "model": MODELS,
    "resolution": st.sampled_from(get_args(Resolution)),
    "ratio": st.sampled_from(get_args(Ratio)),
    "duration": st.integers(1, 600),
    "seed": st.integers(0, MAX_SEED),
    "watermark": st.booleans(),
    "camerafixed": st.booleans(),
    "return_last_frame": st.booleans(),
    "generate_audio": st.booleans(),
}
FRAMES = st.fixed_dictionaries({"first_frame": IMAGE_PATHS}, optional={"last_frame": IMAGE_PATHS}) | st.builds(
    lambda refs: {"reference_images": refs}, st.lists(IMAGE_PATHS, min_size=1, max_size=4)
)
VALID_MANIFESTS = st.builds(
    lambda frames, rest: {**frames, **rest}, FRAMES, st.fixed_dictionaries({}, optional=OPTIONAL_FIELDS)
)


@st.composite
def perturbed_manifests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest, left as is or with one change: a field dropped, retyped or set to any JSON, one added."""
    document: dict[str, Any] = draw(VALID_MANIFESTS)
    change = draw(st.sampled_from(["none"] * 4 + ["drop", "any-value", "scalar", "unknown-field"]))
    if change == "drop":
        document.pop(draw(st.sampled_from(sorted(document))))
    elif change == "any-value":
        document[draw(st.sampled_from(FIELDS))] = draw(JSON_VALUES)
    elif change == "scalar":
        document[draw(st.sampled_from(FIELDS))] = draw(SCALARS)
    elif change == "unknown-field":
        document[draw(st.text(min_size=1, max_size=12).filter(lambda name: name not in FIELDS))] = draw(SCALARS)
    return document


@given(st.binary(max_size=512))
@example(b'{"first_frame": "a.png", "seed": ' + b"9" * 5000 + b"}")  # ValueError (int digit limit) out of json.loads
@example(b'{"first_frame": "a.png", "seed": NaN}')
def test_arbitrary_bytes_are_a_manifest_or_invalid_manifest(data):
    assert_manifest_path_answers(data)


@given(JSON_VALUES)
def test_any_json_document_is_a_manifest_or_invalid_manifest(document):
    assert_manifest_path_answers(json.dumps(document).encode())


@given(MANIFEST_SHAPED)
@example({"first_frame": "a.png", "prompt": "=?UTF-8?B?A?="})
def test_a_manifest_shaped_document_with_any_values_is_a_manifest_or_invalid_manifest(document):
    assert_manifest_path_answers(json.dumps(document, ensure_ascii=False).encode())


@given(DEEP)
@example(_deep("[", 60_000))  # RecursionError out of json.loads
@example(_deep('{"a": ', MAX_MANIFEST_DEPTH))
def test_deep_nesting_is_refused_before_the_parser_recurses(data):
    assert_manifest_path_answers(data)


@given(st.sampled_from(["first_frame", "last_frame", "prompt", "model"]), SURROGATE_ESCAPE)
@example("first_frame", '"\\ud800"')
def test_an_escaped_lone_surrogate_in_any_text_field_is_invalid_manifest(field, escaped):
    fields = {"first_frame": '"a.png"', field: escaped}
    data = ("{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}").encode()
    refusal = answer_or_refusal(lambda: parse_manifest(data))
    assert isinstance(refusal, InvalidInput) and refusal.code == ErrorCode.INVALID_MANIFEST


@pytest.mark.generated
def test_valid_manifests_and_their_perturbations_get_past_the_parser_and_answer_at_every_step():
    reached: Counter[str] = Counter()

    @given(perturbed_manifests())
    def manifest_path_answers(document: dict[str, Any]) -> None:
        reached[assert_manifest_path_answers(json.dumps(document, ensure_ascii=False).encode())] += 1

    manifest_path_answers()
    total = sum(reached.values())
    # Most generated inputs must reach the frame and request rules, or this property tests the parser only.
    # (Shares vary with Hypothesis' choices from run to run: these bounds leave room below the usual 50-85 %.)
    assert total >= 50 and total - reached["parser"] >= total * 0.4, reached
    assert reached["accepted"] >= total * 0.15, reached
