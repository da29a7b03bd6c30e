"""seedance_local.footprint on made-up build trees (it never runs `sam build` itself)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from seedance_local.footprint import (
    LAYER_LIMIT_BYTES,
    ArtifactSize,
    format_table,
    layer_over_limit,
    main,
    measure,
    zipped_size,
)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    layer = build / "CommonLayer" / "python"
    write(layer / "seedance_pipeline" / "__init__.py", b'"""pkg"""\n')
    write(layer / "pkg" / "zeros.bin", bytes(200_000))  # compresses to almost nothing
    write(layer / "pkg" / "random.bin", os.urandom(50_000))  # does not compress
    write(build / "SubmitFunction" / "submit_handler.py", b"def lambda_handler(event, context):\n    return 1\n")
    write(build / "PollFunction" / "poll_handler.py", b"x = 1\n" * 10)
    write(build / "template.yaml", b"Resources: {}\n")  # a file beside the artifacts, not an artifact
    return build


def by_name(sizes: list[ArtifactSize]) -> dict[str, ArtifactSize]:
    return {size.name: size for size in sizes}


def test_measure_reports_each_artifact_directory(build_dir: Path) -> None:
    sizes = measure(build_dir)
    assert [size.name for size in sizes] == ["CommonLayer", "PollFunction", "SubmitFunction"]
    named = by_name(sizes)
    layer = named["CommonLayer"]
    assert layer.unzipped_bytes == len(b'"""pkg"""\n') + 200_000 + 50_000
    assert layer.files == 3
    assert named["PollFunction"].unzipped_bytes == 60
    assert named["SubmitFunction"].files == 1
    # Deflated: the zeros shrink to nearly nothing, the random bytes stay; zip headers add a little.
    assert 50_000 < layer.zipped_bytes < 55_000
    assert all(size.zipped_bytes > 0 for size in sizes)


def test_zipped_size_is_the_size_of_a_real_zip_with_relative_paths(build_dir: Path, tmp_path: Path) -> None:
    root = build_dir / "CommonLayer"
    archive_path = tmp_path / "layer.zip"
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(root).as_posix())
    assert zipped_size(root) == archive_path.stat().st_size
    with zipfile.ZipFile(archive_path) as archive:
        assert "python/pkg/zeros.bin" in archive.namelist()


def test_main_prints_the_table_and_passes_under_the_limit(build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(build_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["artifact", "unzipped", "zipped", "files"]
    for name in ("CommonLayer", "PollFunction", "SubmitFunction"):
        assert name in out
    assert "250.0 kB" in out  # CommonLayer unzipped, 10**3-based like the limit
    assert "within its 30 MB" in out


def test_main_fails_when_the_layer_is_over_30_mb(build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = build_dir / "CommonLayer" / "python" / "pkg" / "big.bin"
    with big.open("wb") as handle:  # sparse: 30 MB of zeros cost no disk
        handle.truncate(LAYER_LIMIT_BYTES)
    layer_bytes = LAYER_LIMIT_BYTES + len(b'"""pkg"""\n') + 250_000
    assert main([str(build_dir)]) == 1
    err = capsys.readouterr().err
    assert "CommonLayer" in err
    assert "30 MB" in err
    assert f"{layer_bytes} bytes" in err
    assert f"{layer_bytes / 1_000_000:.2f} MB" in err


def test_limit_is_exclusive_and_configurable(build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sizes = measure(build_dir)
    layer_bytes = by_name(sizes)["CommonLayer"].unzipped_bytes
    assert layer_over_limit(sizes, limit_bytes=layer_bytes) is None
    message = layer_over_limit(sizes, limit_bytes=layer_bytes - 1)
    assert message is not None
    assert f"{layer_bytes} bytes" in message
    assert main([str(build_dir), "--layer-limit-mb", "0.1"]) == 1
    assert "over the limit of 0.1 MB (100000 bytes)" in capsys.readouterr().err


def test_missing_build_dir_or_layer_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError):
        measure(tmp_path / "nope")
    assert main([str(tmp_path / "nope")]) == 2
    assert "sam build" in capsys.readouterr().err
    write(tmp_path / "only-functions" / "SubmitFunction" / "h.py", b"x = 1\n")
    assert main([str(tmp_path / "only-functions")]) == 2
    assert "no CommonLayer" in capsys.readouterr().err


def test_format_table_lines_up() -> None:
    table = format_table([ArtifactSize("CommonLayer", 24_440_000, 7_110_000, 955), ArtifactSize("Poll", 860, 575, 1)])
    lines = table.splitlines()
    assert len(lines) == 3
    assert "24.44 MB" in lines[1]
    assert "7.11 MB" in lines[1]
    assert "860 B" in lines[2]
    assert len({len(line) for line in lines}) == 1
