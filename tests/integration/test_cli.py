"""`seedance-pipeline demo/run`, called in-process: a real LocalStack (moto server), the simulator over HTTP,
the real handlers, and real MP4s decoded with PyAV."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

import seedance_simulator
from seedance_local import cli, cli_demo
from seedance_local.harness import REPO_ROOT
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
        (lambda d: ["run", str(d / "ok.png"), "--takes", "9"], "'9' is not a whole number from 1 to 8"),
    ],
    ids=["missing-file", "text-file-named-jpg", "unknown-resolution", "negative-seed", "too-many-takes"],
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
    garden_sidecar = json.loads((out / "demo" / "flower-garden.png.json").read_text())
    garden = garden_sidecar["request"]
    # A current model with sound (2.0 takes no camera_fixed: the locked camera is the 1.0 pro sunset's).
    assert garden["model"] == "doubao-seedance-2-0-260128" and garden["generate_audio"] is True
    assert garden["camerafixed"] is False
    sunset = json.loads((out / "demo" / "sunset-hills.jpg.json").read_text())["request"]
    assert sunset["camerafixed"] is True
    with av.open(str(out / "demo" / garden_sidecar["outputs"]["video"].removeprefix("videos/demo/"))) as container:
        assert container.streams.audio, "the demo's 2.0 video asked for sound"
    assert garden["prompt"] == cli_demo.DEMO_NON_ASCII_PROMPT  # sent RFC 2047-encoded, stored decoded
    # The demo's batch file: two takes of one row (two seeds) and a plain UTF-8 prompt, and its report.
    takes = [json.loads(p.read_text()) for p in sorted((out / "demo" / "catalogue.csv").glob("hills.take*.json"))]
    assert len(takes) == 2 and takes[0]["request"]["seed"] != takes[1]["request"]["seed"]
    batch_garden = json.loads((out / "demo" / "catalogue.csv" / "garden.json").read_text())["request"]
    assert batch_garden["prompt"] == cli_demo.DEMO_NON_ASCII_PROMPT
    assert (out / "pipeline.log").stat().st_size > 0  # the handlers' logs went there, not to the terminal
    assert "{" not in capsys.readouterr().out  # no JSON log lines or EMF metrics in the terminal output


def test_samples_are_small_images_the_provider_accepts():
    from seedance_local.make_samples import MAX_SAMPLE_BYTES, SAMPLES, SAMPLES_DIR
    from seedance_pipeline.rules.image_rules import prepare_image

    for name in SAMPLES:
        data = (SAMPLES_DIR / name).read_bytes()
        assert len(data) < MAX_SAMPLE_BYTES
        assert prepare_image(data).changes == []  # raises when a provider rule is broken; sent as it is


def test_several_bad_images_are_all_named_in_one_line(tmp_path, capsys):
    (tmp_path / "a.jpg").write_text("not a picture\n")
    (tmp_path / "b.png").write_text("nor this\n")

    code = cli.main(["run", str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), str(tmp_path / "missing.jpg")])

    assert code == 2
    line = _one_line_error(capsys)
    assert "a.jpg" in line
    assert "b.png" in line
    assert "missing.jpg: no such file" in line


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(tmp_path, capsys, timeout):
    (tmp_path / "ok.png").write_bytes(image_bytes(640, 480, "PNG"))

    assert cli.main(["run", str(tmp_path / "ok.png"), f"--timeout={timeout}", "--out", str(tmp_path / "out")]) == 2
    assert "not a positive number of seconds" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_folder_without_images_is_named_as_a_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()

    assert cli.main(["run", str(tmp_path / "empty")]) == 2
    assert "is a folder with no images" in _one_line_error(capsys)


def test_version_comes_from_the_installed_package(capsys):
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"seedance-pipeline {version('seedance-s3-pipeline')}"


def test_without_the_demo_extra_the_command_names_it_in_one_line():
    # rich missing, as after `pip install -e .` without [demo]: a None entry in sys.modules makes its import fail.
    script = "import sys; sys.modules['rich'] = None; from seedance_local import cli; sys.exit(cli.main(['demo']))"
    dev_paths = os.pathsep.join(str(REPO_ROOT / p) for p in ("layers/common", "dev"))
    env = {**os.environ, "PYTHONPATH": dev_paths}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "seedance-pipeline: error: the Python package 'rich' is missing: seedance-pipeline needs the 'demo' extra "
        "(pip install -e '.[demo]', or `make demo` sets it up)"
    ]


def test_a_folder_of_images_and_a_long_prompt_go_through_a_manifest_with_the_model_asked_for(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "lake.png").write_bytes(image_bytes(800, 600, "PNG"))
    (photos / "notes.txt").write_text("not an image, not taken\n")
    prompt = "湖面上的薄雾慢慢散开，" * 82  # 902 characters: over 2 KB as RFC 2047 metadata
    out = tmp_path / "out"
    model = "doubao-seedance-1-0-lite-i2v-250428"

    code = cli.main(
        ["run", str(photos), "--prompt", prompt, "--model", model, "--resolution", "480p", "--out", str(out)]
    )

    assert code == 0, capsys.readouterr()
    sidecar = json.loads((out / "lake.json.json").read_text())  # the manifest uploads/lake.json's sidecar
    assert sidecar["request"]["prompt"] == prompt[:800]  # the pipeline's 800-character cut, noted on the job
    assert sidecar["request"]["model"] == model
    assert sidecar["source"]["key"].endswith("lake.json")  # sent as a manifest
    assert _video(out / sidecar["outputs"]["video"].removeprefix("videos/"))[3] == 121


def test_an_unreachable_provider_shows_the_reason_and_ends_the_wait_early(tmp_path, capsys, monkeypatch):
    from seedance_local import run_engine
    from seedance_local.local_stack import port_is_free

    port = 9
    assert port_is_free(port)
    monkeypatch.setenv("SEEDANCE_API_KEY", "not-a-real-key")
    monkeypatch.setenv("SEEDANCE_API_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(run_engine, "STUCK_SECONDS", 1.0)
    photo = tmp_path / "city.jpg"
    photo.write_bytes(image_bytes(800, 600))
    # Were the early end missing, the wait would run out this --timeout instead, without the "Stopped waiting" line.
    code = cli.main(["run", str(photo), "--resolution", "480p", "--out", str(tmp_path / "out"), "--timeout", "60"])

    assert code == 1
    out = capsys.readouterr().out
    assert "Stopped waiting: every job has been held up by the same problem" in out
    assert "still WAITING when the wait ended; last problem: PROVIDER_" in out
    assert "1 WAITING - last problem (1 job(s)): PROVIDER_" in out  # the live view said so while it waited


def test_run_speaks_the_native_ark_dialect_to_the_simulator_when_asked(tmp_path, capsys):
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(image_bytes(800, 600))
    out = tmp_path / "out"
    code = cli.main(["run", str(photo), "--api", "ark", "--resolution", "480p", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    sidecar = json.loads((out / "harbour.jpg.json").read_text())
    assert sidecar["provider"]["status"] == "succeeded"  # Ark's own status word; the gateway says SUCCESS
    assert _video(out / sidecar["outputs"]["video"].removeprefix("videos/"))[3] == 121
