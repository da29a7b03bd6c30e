"""Batch files: a `.csv` or `.jsonl` upload under the input prefix that asks for one video per row.

    id,image,prompt,duration,takes
    sku-1,photos/sku-1.jpg,镜头缓慢推进,5,
    sku-2,/uploads/shared/sku-2.png,"a prompt, with a comma",10,2

A row names its image (`image`: relative to the batch file's folder, or an absolute key under the input prefix) and
any per-job field a manifest takes, under the manifest's own names; `id` is the user's record id (default: the row
number, from 1) and `takes` asks for several videos of one request with different seeds. Each row is checked by the
manifest's own rules (rules/manifests.py). A bad row is refused alone, with a reason naming its row and field; a
file over the limits below, or unreadable as a whole (not UTF-8, broken quoting, an unknown CSV column), is refused
whole, before anything is paid for.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from seedance_pipeline.errors import ErrorCode, InvalidInput
from seedance_pipeline.rules.keys import JOB_ID_LENGTH, SOURCE_TAG_LENGTH
from seedance_pipeline.rules.manifests import (
    MAX_MANIFEST_DEPTH,
    MAX_TAKES,
    JobManifest,
    frame_keys,
    manifest_from_fields,
    nesting_depth,
    parse_manifest,
)
from seedance_pipeline.rules.video_request import MAX_SEED
from seedance_pipeline.settings import Settings

BATCH_SUFFIXES = (".csv", ".jsonl")
# Limits, enforced before a row becomes a job (docs/batches.md). 16 MiB reads in well under a second; 10,000 jobs
# are written in bulk by the submit function well inside its 90 s timeout (bench figure 10a: ~30 s on moto, an
# estimated ~15 s on DynamoDB, most of it CPU).
MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_ROWS = 10_000
# Rows times takes: every take is a job, a provider task and an item in the jobs table.
MAX_BATCH_JOBS = 10_000
# One row is one job: the same bound as a manifest, and a cell can never make a job record approach 400 KB.
MAX_ROW_BYTES = 64 * 1024
MAX_ID_CHARS = 128
# Fields a row has besides the manifest's.
ROW_FIELDS = ("id", "image", "takes")


def is_batch_file(key: str) -> bool:
    return key.lower().endswith(BATCH_SUFFIXES)


@dataclass(frozen=True)
class BatchRow:
    """One row of a batch file: its position (from 1), the user's id, and either a valid request or why not."""

    row: int
    record_id: str
    takes: int = 1
    manifest: JobManifest | None = None
    image_keys: tuple[str, ...] = ()
    error: str | None = None


def check_batch_size(size_bytes: int) -> None:
    if size_bytes > MAX_BATCH_BYTES:
        raise InvalidInput(
            f"the batch file is {size_bytes} bytes, over the limit of {MAX_BATCH_BYTES // (1024 * 1024)} MiB: "
            "split it into several files",
            code=ErrorCode.INVALID_BATCH,
        )


def parse_batch(key: str, data: bytes, settings: Settings) -> list[BatchRow]:
    """Every row of the batch file, valid or not. Raises InvalidInput when the file as a whole is refused."""
    check_batch_size(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the batch file is not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start}): save it as UTF-8",
            code=ErrorCode.INVALID_BATCH,
        ) from exc
    text = text.removeprefix("\ufeff")  # a byte order mark, as spreadsheet programs write
    records = _csv_records(text) if key.lower().endswith(".csv") else _jsonl_records(text)
    if not records:
        raise InvalidInput("the batch file has no rows", code=ErrorCode.INVALID_BATCH)
    rows = [_row(number, fields, key, settings) for number, fields in records]
    _refuse_duplicate_ids(rows)
    jobs = sum(row.takes for row in rows if row.error is None)
    if jobs > MAX_BATCH_JOBS:
        raise InvalidInput(
            f"the batch file asks for {jobs} videos (rows times takes), over the limit of {MAX_BATCH_JOBS}",
            code=ErrorCode.INVALID_BATCH,
        )
    return rows


def _too_many_rows() -> InvalidInput:
    return InvalidInput(
        f"the batch file has more than {MAX_BATCH_ROWS} rows: split it into several files", code=ErrorCode.INVALID_BATCH
    )


def _csv_records(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the batch file is empty: it needs a header row", code=ErrorCode.INVALID_BATCH)
        names = [name.strip() for name in header]
        known = set(JobManifest.model_fields) | set(ROW_FIELDS)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InvalidInput(
                f"the batch file's header names unknown columns: {', '.join(repr(n) for n in unknown)}",
                code=ErrorCode.INVALID_BATCH,
            )
        if len(set(names)) != len(names):
            raise InvalidInput("the batch file's header names a column twice", code=ErrorCode.INVALID_BATCH)
        records: list[tuple[int, dict[str, Any] | str]] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, as spreadsheets leave at the end
            number = len(records) + 1
            if number > MAX_BATCH_ROWS:
                raise _too_many_rows()
            if len(cells) != len(names):
                records.append((number, f"has {len(cells)} cells where the header names {len(names)} columns"))
                continue
            if sum(len(cell.encode()) for cell in cells) > MAX_ROW_BYTES:
                records.append((number, f"is over {MAX_ROW_BYTES // 1024} KB"))
                continue
            records.append((number, {n: _cell(n, c) for n, c in zip(names, cells, strict=True) if c.strip()}))
    except csv.Error as exc:
        raise InvalidInput(
            f"the batch file is not valid CSV at line {reader.line_num}: {exc}", code=ErrorCode.INVALID_BATCH
        ) from exc
    return records


# The manifest's fields (and `takes`) whose CSV cells are read as JSON: numbers, booleans, lists.
TYPED_FIELDS = frozenset(
    {"takes"}
    | {
        name
        for name, field in JobManifest.model_fields.items()
        if any(t in str(field.annotation) for t in ("int", "bool", "list"))
    }
)


def _cell(name: str, cell: str) -> Any:
    """A CSV cell in the type the manifest's field takes: text stays text; numbers, booleans and lists (a JSON
    array) are read as JSON, and anything unreadable stays text for the field's own message."""
    if name not in TYPED_FIELDS:
        return cell
    try:
        return json.loads(cell.strip())
    except ValueError:
        return cell


def _jsonl_records(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    records: list[tuple[int, dict[str, Any] | str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        number = len(records) + 1
        if number > MAX_BATCH_ROWS:
            raise _too_many_rows()
        if len(line.encode()) > MAX_ROW_BYTES:
            records.append((number, f"is over {MAX_ROW_BYTES // 1024} KB"))
            continue
        if nesting_depth(line) > MAX_MANIFEST_DEPTH:
            records.append((number, f"nests deeper than {MAX_MANIFEST_DEPTH} levels"))
            continue
        try:
            document = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:
            records.append((number, f"is not valid JSON: {exc}"))
            continue
        if not isinstance(document, dict):
            records.append((number, "is not a JSON object"))
            continue
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            records.append((number, "holds text that is not valid Unicode"))
            continue
        records.append((number, document))
    return records


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _row(number: int, fields: dict[str, Any] | str, key: str, settings: Settings) -> BatchRow:
    if isinstance(fields, str):
        return BatchRow(row=number, record_id=str(number), error=f"row {number} {fields}")
    record_id = fields.pop("id", None)
    record_id = str(number) if record_id is None else record_id
    if not isinstance(record_id, str | int) or isinstance(record_id, bool):
        return BatchRow(row=number, record_id=str(number), error=f"row {number}: 'id' must be text or a number")
    record_id = str(record_id)
    problem = _id_problem(record_id)
    if problem:
        return BatchRow(row=number, record_id=str(number), error=f"row {number}: 'id' {problem}")

    def refused(message: str) -> BatchRow:
        return BatchRow(row=number, record_id=record_id, error=f"row {number} (id {record_id}): {message}")

    takes = fields.get("takes", 1)
    if isinstance(takes, bool) or not isinstance(takes, int) or not 1 <= takes <= MAX_TAKES:
        return refused(f"'takes' must be a whole number from 1 to {MAX_TAKES}")
    if "first_frame" in fields:
        return refused("name the image in 'image' ('first_frame' is the manifest's name for it)")
    image = fields.pop("image", None)
    if image is not None:
        if not isinstance(image, str):
            return refused("'image' must be an object key")
        fields["first_frame"] = image
    elif "reference_images" not in fields:
        return refused("'image' is required")
    try:
        manifest = manifest_from_fields(fields, what="the row")
        image_keys = frame_keys(key, manifest, settings)
    except InvalidInput as exc:
        return refused(exc.message.replace("'first_frame'", "'image'").replace("the manifest's", "the row's"))
    return BatchRow(row=number, record_id=record_id, takes=takes, manifest=manifest, image_keys=tuple(image_keys))


def _id_problem(record_id: str) -> str | None:
    if not record_id or len(record_id) > MAX_ID_CHARS:
        return f"must be 1 to {MAX_ID_CHARS} characters"
    # The id names the row's outputs (`<batch file>/<id>.take<N>...`): one path segment of printable text.
    if "/" in record_id or record_id in (".", "..") or not record_id.isprintable():
        return "must be printable text without '/'"
    return None


def _refuse_duplicate_ids(rows: list[BatchRow]) -> None:
    """An id names a row's outputs: two rows with one id would write over each other. The later one is refused."""
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        if row.error is not None:
            continue
        seen = first.setdefault(row.record_id, row.row)
        if seen != row.row:
            rows[index] = BatchRow(
                row=row.row,
                record_id=row.record_id,
                error=f"row {row.row}: 'id' {row.record_id!r} is already used by row {seen}",
            )


def manifest_rows(key: str, data: bytes, settings: Settings) -> list[BatchRow]:
    """A manifest asking for several takes, as a batch of one row: its id is the manifest's name."""
    manifest = parse_manifest(data)
    record_id = posixpath.basename(key).rsplit(".", 1)[0] or "1"
    return [
        BatchRow(
            row=1,
            record_id=record_id,
            takes=manifest.takes or 1,
            manifest=manifest,
            image_keys=tuple(frame_keys(key, manifest, settings)),
        )
    ]


def row_job_id(batch_id: str, row: int, take: int) -> str:
    """A row's (and take's) job id, from the batch upload's identity: the same on every delivery and every retry."""
    # It ends with the batch's tag, so the poller can share capacity between sources (logic/admission_order.py)
    # from the due index alone; it starts with the row's own hash, which spreads rows over the due shards.
    own = hashlib.sha256(f"{batch_id}\nrow {row}\ntake {take}".encode()).hexdigest()
    return own[: JOB_ID_LENGTH - SOURCE_TAG_LENGTH] + batch_id[:SOURCE_TAG_LENGTH]


def take_seed(batch_id: str, row: BatchRow, take: int) -> int | None:
    """The seed of one take: the row's own seed (or one derived from the batch and row) plus the take's offset, so
    N takes are N different requests and a repeat of the batch file repeats them. One take keeps the row's seed."""
    base = row.manifest.seed if row.manifest is not None else None
    if row.takes == 1:
        return base
    if base is None:
        base = int(hashlib.sha256(f"{batch_id}\n{row.row}".encode()).hexdigest()[:8], 16)
    return (base + take - 1) % (MAX_SEED + 1)
