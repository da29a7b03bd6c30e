"""`seedance-pipeline demo/run`, called in-process: a real LocalStack (moto server), the simulator over HTTP,
the real handlers, and real MP4s decoded with PyAV."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import av
import pytest

import seedance_simulator
from seedance_local import cli, cli_demo
from tests.support.expect import present
from tests.support.images import image_bytes

# Powertools binds its log handler to sys.stdout when this module is first imported. Import it at collection, so
# it binds to pytest's session-wide capture and not to one test's capsys stream, which closes after that test.
importlib.import_module("seedance_pipeline.observability")


@pytest.fixture(autouse=True)
def _wide_simulated_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulator, whatever the developer's shell says; and a table wide enough to read reasons in one piece.
    monkeypatch.delenv("SEEDANCE_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def _video(path: Path) -> tuple[int, int, float, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, float(present(stream.average_rate)), frames


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seedance-pipeline: error: ")
    return lines[0]


def test_run_turns_a_png_into_a_480p_square_video_with_a_sidecar(tmp_path, capsys):
    photo = tmp_path / "garden photo.png"
    photo.write_bytes(image_bytes(900, 700, "PNG"))
    out = tmp_path / "out"
    prompt = "Pétalos al viento, 50% más lento — 花"

    code = cli.main(
        ["run", str(photo), "--resolution", "480p", "--ratio", "1:1", "--prompt", prompt, "--out", str(out)]
    )

    assert code == 0, capsys.readouterr()
    (video,) = out.glob("garden photo.png.*.mp4")  # <name>.<ext>.<job tag>.mp4
    assert _video(video) == (640, 640, 24.0, 121)
    sidecar = json.loads((out / "garden photo.png.json").read_text())
    assert sidecar["outputs"]["video"] == f"videos/{video.name}"
    assert sidecar["request"]["resolution"] == "480p"
    assert sidecar["request"]["ratio"] == "1:1"
    assert sidecar["request"]["prompt"] == prompt  # RFC 2047 on the wire, decoded by the pipeline
    assert "SUCCEEDED" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda d: ["run", str(d / "missing.jpg")], "no such file"),
        (lambda d: ["run", str(d / "notes.jpg")], "not a readable image"),
        (lambda d: ["run", str(d / "ok.png"), "--resolution", "4k"], "invalid choice: '4k'"),
        (lambda d: ["run", str(d / "ok.png"), "--seed", "-1"], "not a whole number from 0 to 2147483647"),
    ],
    ids=["missing-file", "text-file-named-jpg", "unknown-resolution", "negative-seed"],
)
def test_bad_input_is_one_stderr_line_and_exit_code_2_before_anything_starts(tmp_path, capsys, make_args, expected):
    (tmp_path / "notes.jpg").write_text("these are notes, not a picture\n")
    (tmp_path / "ok.png").write_bytes(image_bytes(640, 480, "PNG"))
    out = tmp_path / "out"

    code = cli.main([*make_args(tmp_path), "--out", str(out)])

    assert code == 2
    assert expected in _one_line_error(capsys)
    assert not out.exists()  # nothing was started: no stack, no log


def test_a_job_the_provider_fails_shows_its_reason_and_exits_1(tmp_path, capsys, monkeypatch):
    reason = "Moderation blocked this clip"
    real_knobs = seedance_simulator.Knobs
    monkeypatch.setattr(seedance_simulator, "Knobs", lambda **kw: real_knobs(**kw, failure_reason=reason))
    photo = tmp_path / "city.jpg"
    photo.write_bytes(image_bytes(800, 600))

    code = cli.main(["run", str(photo), "--resolution", "480p", "--out", str(tmp_path / "out")])

    assert code == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert reason in captured.out
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_demo_makes_three_videos_of_the_requested_sizes_with_sidecars(tmp_path, capsys):
    out = tmp_path / "demo-out"

    code = cli.main(["demo", "--out", str(out)])

    assert code == 0, capsys.readouterr()
    expected = {"sunset-hills": (864, 480), "night-city": (480, 864), "flower-garden": (640, 640)}  # 16:9, 9:16, 1:1
    for name, size in expected.items():
        (source,) = {p.name for p in (out / "demo").glob(f"{name}.*.json")}
        sidecar = json.loads((out / "demo" / source).read_text())
        width, height, fps, frames = _video(out / sidecar["outputs"]["video"].removeprefix("videos/"))
        assert (width, height, fps, frames) == (*size, 24.0, 121)
        assert sidecar["task_id"]
    assert list((out / "demo").glob("night-city.jpg.*.last-frame.png"))  # asked for with return-last-frame
    garden = json.loads((out / "demo" / "flower-garden.png.json").read_text())["request"]
    assert garden["camerafixed"] is True
    assert garden["prompt"] == cli_demo.DEMO_NON_ASCII_PROMPT  # sent RFC 2047-encoded, stored decoded
    assert (out / "pipeline.log").stat().st_size > 0  # the handlers' logs went there, not to the terminal
    assert "{" not in capsys.readouterr().out  # no JSON log lines or EMF metrics in the terminal output


def test_samples_are_small_images_the_provider_accepts():
    from seedance_local.make_samples import MAX_SAMPLE_BYTES, SAMPLES, SAMPLES_DIR
    from seedance_pipeline.rules.image_rules import inspect_image

    for name in SAMPLES:
        data = (SAMPLES_DIR / name).read_bytes()
        assert len(data) < MAX_SAMPLE_BYTES
        inspect_image(data)  # raises when a provider rule is broken
