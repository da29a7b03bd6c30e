"""The tree is the diagram: imports go down the layers (handler -> logic -> adapters -> rules -> models/errors), never
round in a circle, and no module reaches into another's private names. Read from the source with `ast`, imports
under `if TYPE_CHECKING:` included: a circle that only the type checker walks is still a circle to the reader."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "seedance_pipeline": ROOT / "layers/common/seedance_pipeline",
    "seedance_simulator": ROOT / "dev/seedance_simulator",
    "seedance_local": ROOT / "dev/seedance_local",
}
# seedance_pipeline's layers, lowest first: a module may import from its own layer or a lower one only. `triggers`
# describes the Lambda events (and the hand-off event the callback adapter sends), so adapters may use its shapes.
LAYERS = [
    {"redaction"},
    {"errors"},
    {"models"},
    {"rules", "settings", "observability"},
    {"triggers"},
    {"adapters", "ports"},
    {"runtime"},
    {"logic"},
]


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[tuple[str, str]]:
    """(module imported, name imported from it or "") for every project import of `name`."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", ""
                elif base in MODULES:
                    yield base, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, ""


GRAPH = {name: {target for target, _ in _imports(name)} - {name} for name in MODULES}


def _layer(module: str) -> int | None:
    if not module.startswith("seedance_pipeline."):
        return None
    top = module.split(".")[1]
    return next(level for level, names in enumerate(LAYERS) if top in names)


def test_the_layer_package_has_a_layer_for_every_module() -> None:
    tops = {name.split(".")[1] for name in MODULES if name.startswith("seedance_pipeline.")}
    assert tops <= set().union(*LAYERS), tops - set().union(*LAYERS)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if (low := _layer(module)) is not None and (high := _layer(target)) is not None and high > low
    ]
    assert upward == []


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        f"{module} imports {name} from {target}"
        for module in MODULES
        for target, name in _imports(module)
        if name.startswith("_") and target != module
    ]
    assert private == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_modules_import_each_other_in_a_circle(package: str) -> None:
    circles = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(m for m in MODULES if m.startswith(package)):
        visit(module, [])
    assert circles == []
