"""bench figure 5 prices each wheel added to the layer from the built layer's own RECORDs."""

from pathlib import Path

from bench.layer_footprint import wheel_sizes


def _write(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path.name


def test_a_wheels_cost_is_its_files_left_in_the_layer_after_pruning(tmp_path: Path) -> None:
    site = tmp_path / "python"
    _write(site / "pi_heif" / "__init__.py", 100)
    _write(site / "pi_heif.libs" / "libheif.so", 5000)
    _write(site / "other" / "mod.py", 7)
    record = site / "pi_heif-1.4.0.dist-info" / "RECORD"
    record.parent.mkdir(parents=True)
    record.write_text(
        "pi_heif/__init__.py,sha256=a,100\n"
        "pi_heif.libs/libheif.so,sha256=b,5000\n"
        "pi_heif.libs/libx265.so,sha256=c,9000\n"  # listed, but pruned by the build: costs nothing
        "pi_heif-1.4.0.dist-info/RECORD,,\n"
    )
    (site / "other-2.0.dist-info").mkdir()
    (site / "other-2.0.dist-info" / "RECORD").write_text("other/mod.py,,7\n")

    sizes = wheel_sizes(site)

    assert sizes["pi-heif"] == 5100 + len(record.read_bytes())
    assert sizes["other"] == 7
