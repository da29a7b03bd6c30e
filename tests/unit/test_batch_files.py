"""The batch file parser: rows by the manifest's rules, refusals that name the row and field, limits up front."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.batch_files import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ROWS,
    MAX_TAKES,
    BatchRow,
    parse_batch,
    row_job_id,
    take_seed,
)
from seedance_pipeline.rules.video_request import MAX_SEED
from seedance_pipeline.settings import Settings
from tests.support.example_counts import examples
from tests.support.fakes import GATEWAY_URL

SETTINGS = Settings(jobs_table_name="t", api_base_url=GATEWAY_URL)
KEY = "uploads/shoot/catalogue.csv"
JSONL = "uploads/shoot/catalogue.jsonl"


def csv_file(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def test_csv_rows_keep_unicode_prompts_quoting_and_resolve_images_beside_the_file():
    rows = parse_batch(
        KEY,
        csv_file(
            "id,image,prompt,duration,takes",
            'sku-1,a.jpg,"镜头缓慢推进, then ""zoom""",5,',
            ",uploads/shared/b.png,,10,3",
        ),
        SETTINGS,
    )
    assert [r.error for r in rows] == [None, None]
    first, second = rows
    assert first.record_id == "sku-1" and first.image_keys == ("uploads/shoot/a.jpg",)
    assert first.manifest is not None and first.manifest.prompt == '镜头缓慢推进, then "zoom"'
    assert first.manifest.duration == 5 and first.takes == 1
    assert second.record_id == "2" and second.image_keys == ("uploads/shared/b.png",) and second.takes == 3


def test_a_byte_order_mark_before_the_header_is_not_part_of_the_first_column():
    rows = parse_batch(KEY, "\ufeffimage,prompt\r\na.jpg,hi\r\n".encode(), SETTINGS)
    assert rows[0].error is None and rows[0].image_keys == ("uploads/shoot/a.jpg",)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("a.jpg,,0", "row 1 (id 1): the row is invalid: 'duration'"),
        ("a.jpg,4k,", "'resolution'"),
        (",,5", "'image' is required"),
        ("../../secret.jpg,,", "'image'"),
    ],
)
def test_a_bad_csv_row_is_refused_alone_naming_its_row_and_field(line, named):
    rows = parse_batch(KEY, csv_file("image,resolution,duration", "ok.jpg,,", line), SETTINGS)
    assert rows[0].error is None
    assert rows[1].error is not None and named.replace("row 1 (id 1)", "row 2 (id 2)") in rows[1].error


def test_jsonl_rows_take_typed_values_and_a_bad_line_is_refused_alone():
    data = "\n".join(
        [
            json.dumps({"id": "a", "image": "a.jpg", "seed": 4, "prompt": "🐈 walks"}, ensure_ascii=False),
            "{not json",
            json.dumps({"id": "c", "image": "c.jpg", "takes": MAX_TAKES + 1}),
            json.dumps({"id": "d", "image": "d.jpg", "colour": "red"}),
            "",
        ]
    ).encode()
    rows = parse_batch(JSONL, data, SETTINGS)
    assert rows[0].error is None and rows[0].manifest is not None and rows[0].manifest.seed == 4
    assert rows[1].error is not None and rows[1].error.startswith("row 2 is not valid JSON")
    assert rows[2].error is not None and "row 3 (id c)" in rows[2].error and "'takes'" in rows[2].error
    assert rows[3].error is not None and "'colour' is not a known field" in rows[3].error


def test_a_repeated_id_refuses_the_later_row_naming_the_first():
    rows = parse_batch(KEY, csv_file("id,image", "x,a.jpg", "x,b.jpg"), SETTINGS)
    assert rows[0].error is None
    assert rows[1].error == "row 2: 'id' 'x' is already used by row 1"


@pytest.mark.parametrize(
    ("key", "data", "named"),
    [
        (KEY, b"image\r\n\xff\xfe.jpg\r\n", "not UTF-8"),
        (KEY, b"image,colour\r\na.jpg,red\r\n", "unknown columns: 'colour'"),
        (KEY, b"", "empty"),
        (KEY, b'image,prompt\r\na.jpg,"never closed\r\n', "not valid CSV"),
        (KEY, b"image\r\n" + b"a.jpg\r\n" * (MAX_BATCH_ROWS + 1), f"more than {MAX_BATCH_ROWS} rows"),
        (JSONL, b'{"image": "a.jpg", "takes": 8}\n' * 1251, "over the limit of 10000"),
        (KEY, b"x" * (MAX_BATCH_BYTES + 1), "over the limit of 16 MiB"),
    ],
)
def test_a_file_over_the_limits_or_unreadable_is_refused_whole(key, data, named):
    with pytest.raises(InvalidInput) as refused:
        parse_batch(key, data, SETTINGS)
    assert named in refused.value.message and refused.value.code == "INVALID_BATCH"


def test_a_huge_cell_refuses_its_row_not_the_file():
    rows = parse_batch(KEY, csv_file("image,prompt", f"a.jpg,{'p' * 70_000}", "b.jpg,short"), SETTINGS)
    assert rows[0].error is not None and "over 64 KB" in rows[0].error and rows[1].error is None


def test_takes_have_distinct_seeds_and_job_ids_the_same_on_every_read():
    rows = parse_batch(KEY, csv_file("image,takes,seed", f"a.jpg,4,{MAX_SEED - 1}", "b.jpg,3,"), SETTINGS)
    seeds = [take_seed("batch", rows[0], take) for take in range(1, 5)]
    assert seeds == [MAX_SEED - 1, MAX_SEED, 0, 1]
    unseeded = [take_seed("batch", rows[1], take) for take in range(1, 4)]
    assert len(set(unseeded)) == 3 and unseeded == [take_seed("batch", rows[1], t) for t in range(1, 4)]
    ids = {row_job_id("batch", row, take) for row in (1, 2) for take in range(1, 5)}
    assert len(ids) == 8


def parsed_or_refusal(key: str, data: bytes) -> list[BatchRow] | InvalidInput:
    try:
        return parse_batch(key, data, SETTINGS)
    except InvalidInput as exc:
        return exc


cells = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=12))
def test_any_csv_either_refuses_the_file_or_gives_one_entry_per_row_with_a_reason_for_each_bad_one(table):
    import csv
    import io

    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["id", "image", "prompt"])
    writer.writerows(table)
    rows = parsed_or_refusal(KEY, out.getvalue().encode())
    if isinstance(rows, InvalidInput):
        assert rows.code == "INVALID_BATCH"
        return
    assert [r.row for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) <= len(table)
    for row in rows:
        assert (row.error is None) == (row.manifest is not None)
        if row.error is not None:
            assert row.error.startswith(f"row {row.row}")
        else:
            assert all(k.startswith(SETTINGS.input_prefix) and ".." not in k.split("/") for k in row.image_keys)


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_anything_but_a_refusal(data):
    for key in (KEY, JSONL):
        rows = parsed_or_refusal(key, data)
        if isinstance(rows, InvalidInput):
            assert rows.code == "INVALID_BATCH"
            continue
        assert all(row.error is None or row.error.startswith(f"row {row.row}") for row in rows)
