"""`python -m seedance_local.check_layer_pins`: the layer's pins agree with pyproject.toml (run by `make check`).

pyproject.toml `[project] dependencies` is the one declaration of what the layer needs; the tests run against
it. `sam build` never reads it: layers/common/Makefile installs layers/common/requirements.txt with
`pip --no-deps`, so a dependency missing there, or pinned outside pyproject's range, is missing or different
in Lambda while every local test still passes. This check makes that drift fail before a deploy.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = REPO_ROOT / "pyproject.toml"
LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "common" / "requirements.txt"

# The Lambda python3.13 runtime ships these; a copy in the layer would come first on sys.path and shadow the
# runtime's botocore (layers/common/Makefile refuses to build such a layer, this says so before the build).
RUNTIME_PROVIDED = frozenset(
    canonicalize_name(name) for name in ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six")
)

# The environment the layer runs in (layers/common/Makefile: LAYER_PYTHON_VERSION, LAYER_PLATFORMS), for
# dependencies declared with a marker: what counts is Lambda, not the machine running the check.
LAMBDA_MARKER_ENVIRONMENT = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
}


class PinFileError(Exception):
    """A file the check reads cannot be understood; the message names the file and the line."""


def declared_dependencies(pyproject: Path) -> list[Requirement]:
    """pyproject.toml `[project] dependencies` that apply in Lambda."""
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PinFileError(f"{pyproject}: cannot read it ({exc})") from exc
    entries = document.get("project", {}).get("dependencies", [])
    requirements = []
    for entry in entries:
        try:
            requirement = Requirement(entry)
        except InvalidRequirement as exc:
            raise PinFileError(f"{pyproject}: [project] dependencies entry {entry!r} is not valid ({exc})") from exc
        if requirement.marker is None or requirement.marker.evaluate(LAMBDA_MARKER_ENVIRONMENT):
            requirements.append(requirement)
    return requirements


def layer_pins(requirements_txt: Path) -> tuple[dict[str, str], list[str]]:
    """The exact version pinned for each package, and the problems with the file itself."""
    try:
        lines = requirements_txt.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PinFileError(f"{requirements_txt}: cannot read it ({exc})") from exc
    pins: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        where = f"{requirements_txt.name} line {number}"
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            problems.append(f"{where}: {text!r} is not a requirement this check understands (expected name==version)")
            continue
        name = canonicalize_name(requirement.name)
        specifiers = list(requirement.specifier)
        exact = len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and "*" not in specifiers[0].version
        if not exact:
            problems.append(
                f"{requirement.name}: {where} must pin one exact version (name==version), not {text!r}; "
                "pip installs it with --no-deps, so the layer would change with every release"
            )
            continue
        if name in pins:
            problems.append(f"{requirement.name}: {where} pins it a second time")
            continue
        pins[name] = specifiers[0].version
    return pins, problems


def pin_problems(pyproject: Path, requirements_txt: Path) -> list[str]:
    """Every disagreement between the declaration and the pins, one message per package; empty when they agree."""
    declared = declared_dependencies(pyproject)
    pins, problems = layer_pins(requirements_txt)
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name in RUNTIME_PROVIDED:
            continue  # declared for the tests; Lambda's runtime provides it (checked below that it is not pinned)
        pinned = pins.get(name)
        if pinned is None:
            problems.append(
                f"{requirement.name}: pyproject.toml [project] dependencies declares {requirement} but "
                f"{requirements_txt.name} does not pin it, so `sam build` leaves it out of the layer"
            )
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(
                f"{requirement.name}: {requirements_txt.name} pins {pinned}, outside the range pyproject.toml "
                f"declares ({requirement.specifier}); the layer would run another version than the tests"
            )
    for provided in sorted(pins.keys() & RUNTIME_PROVIDED):
        problems.append(
            f"{provided}: {requirements_txt.name} pins it, but the Lambda runtime provides it; a copy in the layer "
            "would shadow the runtime's own"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_layer_pins", description="The layer's pins agree with pyproject.toml.")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    parser.add_argument("--requirements", type=Path, default=LAYER_REQUIREMENTS)
    args = parser.parse_args(argv)
    try:
        problems = pin_problems(args.pyproject, args.requirements)
    except PinFileError as exc:
        print(f"layer pins: {exc}", file=sys.stderr)
        return 2
    if problems:
        print(f"layer pins: {args.requirements} disagrees with {args.pyproject}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"layer pins: {args.requirements.name} pins every [project] dependency of pyproject.toml within range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
