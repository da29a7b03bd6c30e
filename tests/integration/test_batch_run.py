"""`seedance-pipeline run catalogue.csv`: a batch file and the images it names, through the whole local pipeline."""

from __future__ import annotations

from seedance_local import cli
from tests.support.images import image_bytes


def test_run_takes_a_csv_batch_and_reports_each_row_and_take(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the results table keeps each label whole
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(image_bytes(800, 450, "PNG", (10, 80, 160)))
    (tmp_path / "photos" / "b.png").write_bytes(image_bytes(800, 450, "PNG", (200, 90, 20)))
    (tmp_path / "catalogue.csv").write_text(
        "id,image,prompt,resolution,takes\nsku-1,photos/a.png,镜头缓慢推进,480p,\nsku-2,photos/b.png,two takes,480p,2\n",
        encoding="utf-8",
    )
    code = cli.main(["run", str(tmp_path / "catalogue.csv"), "--out", str(tmp_path / "out")])
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0, shown
    for label in ("catalogue.csv id sku-1", "catalogue.csv id sku-2 take 1", "catalogue.csv id sku-2 take 2"):
        assert label in shown
    videos = sorted(p.name.split(".")[0] for p in (tmp_path / "out").rglob("*.mp4"))
    assert videos == ["sku-1", "sku-2", "sku-2"]


def test_run_with_takes_makes_that_many_videos_of_an_image_each_reported_by_take(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    (tmp_path / "kitten.png").write_bytes(image_bytes(800, 450, "PNG", (40, 120, 60)))
    out = tmp_path / "out"
    code = cli.main(["run", str(tmp_path / "kitten.png"), "--takes", "2", "--resolution", "480p", "--out", str(out)])
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0, shown
    for label in ("kitten.png id kitten take 1", "kitten.png id kitten take 2"):
        assert label in shown
    videos = sorted(p.name.split(".")[1] for p in out.rglob("*.mp4"))
    assert videos == ["take1", "take2"]
