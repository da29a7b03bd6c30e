"""What `seedance-pipeline run` uploads: the images found, each checked, with its request as S3 metadata or, when
that is too big for S3's 2 KB, as a job manifest beside it."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedance_local import operator_tools
from seedance_local.cli_common import UsageError
from seedance_local.operator_tools import naming_settings
from seedance_pipeline.errors import InvalidInput
from seedance_pipeline.rules.batch_files import is_batch_file, parse_batch
from seedance_pipeline.rules.image_rules import inspect_image
from seedance_pipeline.rules.video_request import decode_metadata_text

S3_METADATA_LIMIT = 2048  # bytes of user metadata (keys + values) S3 accepts on one object
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"})
# Where `run` puts an image whose request is too big for S3 metadata: its manifest names it ("_" folders are
# never processed on their own).
MANIFEST_FRAMES_FOLDER = "_run-frames/"


@dataclass(frozen=True)
class PlannedUpload:
    label: str  # what the results table calls it
    key: str  # the object whose S3 event makes the job
    data: bytes
    metadata: dict[str, str]
    # Objects put before `key` that make no job on their own: the frames a manifest names.
    frames: tuple[tuple[str, bytes], ...] = ()


def encode_metadata_text(text: str) -> str:
    """S3 metadata travels as ASCII HTTP headers: anything else goes RFC 2047-encoded, which the pipeline decodes.

    Plain ASCII that would be mistaken for an encoding (percent escapes, '=?...?=') is encoded too, so it arrives
    exactly as typed.
    """
    if text.isascii() and text.isprintable() and _arrives_unchanged(text):
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def _arrives_unchanged(text: str) -> bool:
    try:
        return decode_metadata_text(text) == text
    except InvalidInput:  # looks like a malformed encoded word
        return False


def request_metadata(args: argparse.Namespace) -> dict[str, str]:
    """The per-image overrides (sent as S3 user metadata) for the options the user gave; the rest default."""
    metadata: dict[str, str] = {}
    if args.prompt is not None:
        metadata["prompt"] = encode_metadata_text(args.prompt)
    for name, value in (("model", args.model), ("resolution", args.resolution), ("ratio", args.ratio),
                        ("duration", args.duration), ("seed", args.seed)):  # fmt: skip
        if value is not None:
            metadata[name] = str(value)
    for name, flag in (("camerafixed", args.camera_fixed), ("watermark", args.watermark),
                       ("return-last-frame", args.last_frame)):  # fmt: skip
        if flag is not None:
            metadata[name] = "true" if flag else "false"
    if args.takes is not None:
        metadata["takes"] = str(args.takes)
    return metadata


def metadata_size(metadata: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


def request_manifest(args: argparse.Namespace, first_frame: str) -> dict[str, Any]:
    """The same request as a job manifest (rules/manifests.py), which carries any prompt, unencoded."""
    manifest: dict[str, Any] = {"first_frame": first_frame}
    for name, value in (("prompt", args.prompt), ("model", args.model), ("resolution", args.resolution),
                        ("ratio", args.ratio), ("duration", args.duration), ("seed", args.seed),
                        ("camerafixed", args.camera_fixed), ("watermark", args.watermark),
                        ("return_last_frame", args.last_frame),
                        ("takes", args.takes)):  # fmt: skip
        if value is not None:
            manifest[name] = value
    return manifest


def image_paths(arguments: list[Path]) -> list[Path]:
    """The files given, with each folder replaced by the images directly in it (by name)."""
    paths: list[Path] = []
    for path in arguments:
        if not path.is_dir():
            paths.append(path)
            continue
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UsageError(f"{path}: is a folder with no images in it ({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths.extend(images)
    return paths


def checked_image(path: Path) -> bytes:
    """The image's bytes, after the provider's input rules: a bad file stops here, before anything starts."""
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = path.read_bytes()
        inspect_image(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except InvalidInput as exc:
        raise UsageError(f"{path}: {exc.message.removeprefix('the object is ')}") from None
    return data


def planned_batch(path: Path, prefix: str) -> PlannedUpload:
    """A batch file, uploaded with the images its rows name relative to it (found beside it on disk). Its rows are
    checked by the pipeline itself: a bad row is reported as REJECTED with its reason, as it would be in S3."""
    try:
        data = path.read_bytes()
        rows = parse_batch(prefix + path.name, data, naming_settings(prefix, operator_tools.DEFAULT_OUTPUT_PREFIX, "t"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except InvalidInput as exc:
        raise UsageError(f"{path}: {exc.message}") from None
    frames: dict[str, bytes] = {}
    for row in rows:
        for key in row.image_keys:
            local = path.parent / key[len(prefix) :]
            if key not in frames and local.is_file():
                frames[key] = checked_image(local)
    return PlannedUpload(path.name, prefix + path.name, data, {}, tuple(frames.items()))


def planned_user_uploads(args: argparse.Namespace) -> list[PlannedUpload]:
    """One upload per image; every bad image is reported at once, before anything starts.

    A request over S3's 2 KB of user metadata (a long prompt, mostly non-ASCII) goes as a job manifest instead:
    the image under a "_" folder and a `<name>.json` manifest naming it, so the video keeps the image's name.
    """
    metadata = request_metadata(args)
    as_manifest = metadata_size(metadata) > S3_METADATA_LIMIT
    prefix = operator_tools.DEFAULT_INPUT_PREFIX
    uploads: dict[str, PlannedUpload] = {}
    problems: list[str] = []
    for path in image_paths(args.images):
        if is_batch_file(path.name):
            try:
                uploads[path.name] = planned_batch(path, prefix)
            except UsageError as exc:
                problems.append(str(exc))
            continue
        try:
            data = checked_image(path)
        except UsageError as exc:
            problems.append(str(exc))
            continue
        name = path.stem if as_manifest else path.name  # a manifest is named after the image's stem
        if name in uploads:
            problems.append(f"two images are named {name}; their videos would overwrite each other")
            continue
        if as_manifest:
            frame_key = f"{prefix}{MANIFEST_FRAMES_FOLDER}{path.name}"
            manifest = request_manifest(args, f"{MANIFEST_FRAMES_FOLDER}{path.name}")
            body = json.dumps(manifest, ensure_ascii=False).encode("utf-8")
            uploads[name] = PlannedUpload(path.name, f"{prefix}{path.stem}.json", body, {}, ((frame_key, data),))
        else:
            uploads[name] = PlannedUpload(path.name, prefix + path.name, data, metadata)
    if problems:
        raise UsageError("; ".join(problems))
    return list(uploads.values())
