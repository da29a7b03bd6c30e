"""The layer-pin check: layers/common/requirements.txt must pin every pyproject dependency within its range."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedance_local.check_layer_pins import LAYER_REQUIREMENTS, PYPROJECT, main, pin_problems

PYPROJECT_TEXT = """
[project]
name = "example"
version = "0"
dependencies = [
    "aws-lambda-powertools[tracer]>=3.10,<4",
    "pydantic>=2.7,<3",
    "Pillow>=10.4",
    "boto3>=1.34",
    "colorama>=0.4; sys_platform == 'win32'",
]
"""

GOOD_PINS = """
# comments and blank lines are fine
aws-lambda-powertools==3.37.0
aws-xray-sdk==2.15.0
pydantic==2.13.5   # trailing comment
pillow==13.0.0
"""


def _files(tmp_path: Path, pins: str, pyproject: str = PYPROJECT_TEXT) -> tuple[Path, Path]:
    pyproject_path = tmp_path / "pyproject.toml"
    pyproject_path.write_text(pyproject, encoding="utf-8")
    requirements_path = tmp_path / "requirements.txt"
    requirements_path.write_text(pins, encoding="utf-8")
    return pyproject_path, requirements_path


def _run(pyproject: Path, requirements: Path) -> int:
    return main(["--pyproject", str(pyproject), "--requirements", str(requirements)])


def test_pins_that_cover_every_declared_dependency_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS)

    assert pin_problems(pyproject, requirements) == []
    assert _run(pyproject, requirements) == 0
    assert capsys.readouterr().err == ""


def test_a_declared_dependency_missing_from_the_pins_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS.replace("pydantic==2.13.5", ""))

    assert _run(pyproject, requirements) == 1
    err = capsys.readouterr().err
    assert "pydantic: pyproject.toml [project] dependencies declares pydantic<3,>=2.7" in err
    assert "does not pin it" in err
    assert "Pillow" not in err


def test_a_pin_outside_the_declared_range_fails_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS.replace("pydantic==2.13.5", "pydantic==3.0.1"))

    assert _run(pyproject, requirements) == 1
    err = capsys.readouterr().err
    assert "pydantic: requirements.txt pins 3.0.1, outside the range pyproject.toml declares (<3,>=2.7)" in err


def test_names_match_however_they_are_spelled(tmp_path: Path) -> None:
    pins = GOOD_PINS.replace("pillow==13.0.0", "PILLOW==13.0.0").replace(
        "aws-lambda-powertools", "AWS_Lambda.Powertools"
    )
    pyproject, requirements = _files(tmp_path, pins)

    assert pin_problems(pyproject, requirements) == []


def test_a_pin_that_is_a_range_fails_naming_it(tmp_path: Path) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS.replace("pillow==13.0.0", "pillow>=13"))

    problems = pin_problems(pyproject, requirements)

    assert len(problems) == 2  # not an exact pin, and so the declared Pillow is not pinned either
    assert problems[0].startswith("pillow: requirements.txt line 6 must pin one exact version")


def test_a_runtime_provided_package_in_the_layer_fails_naming_it(tmp_path: Path) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS + "botocore==1.40.0\n")

    problems = pin_problems(pyproject, requirements)

    assert len(problems) == 1
    assert problems[0].startswith("botocore: requirements.txt pins it, but the Lambda runtime provides it")


def test_a_pin_listed_twice_fails_naming_it(tmp_path: Path) -> None:
    pyproject, requirements = _files(tmp_path, GOOD_PINS + "pydantic==2.13.5\n")

    assert pin_problems(pyproject, requirements) == ["pydantic: requirements.txt line 7 pins it a second time"]


def test_an_unreadable_pin_file_is_an_error_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject, _ = _files(tmp_path, GOOD_PINS)

    assert _run(pyproject, tmp_path / "absent.txt") == 2
    assert "absent.txt: cannot read it" in capsys.readouterr().err


def test_the_repository_layer_pins_agree_with_pyproject() -> None:
    assert pin_problems(PYPROJECT, LAYER_REQUIREMENTS) == []
