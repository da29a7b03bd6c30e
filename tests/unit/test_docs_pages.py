"""The documentation's generated parts match their sources, and the README stays a short front door.

The parameter tables of docs/configuration.md come from template.yaml and the models table of docs/models.md from the
catalogue (seedance_local.docs_pages, run by `make docs`): a template or catalogue change without `make docs` fails
here, naming the stale page.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from seedance_local import docs_pages
from seedance_local.harness import REPO_ROOT
from seedance_local.stack_template import load_template

README = REPO_ROOT / "README.md"


def test_the_committed_pages_are_what_the_template_and_the_catalogue_generate() -> None:
    assert docs_pages.stale_pages() == [], "run `make docs` (python -m seedance_local.docs_pages) and commit the pages"


def test_a_parameter_added_to_the_template_makes_the_configuration_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    template = load_template()
    changed = copy.deepcopy(template)
    changed["Parameters"]["BrandNewKnob"] = {"Type": "String", "Default": "x", "Description": "a new knob"}
    monkeypatch.setattr(docs_pages, "load_template", lambda: changed)
    assert docs_pages.stale_pages() == [docs_pages.CONFIGURATION_PAGE]
    rewritten = docs_pages.generated_pages()[docs_pages.CONFIGURATION_PAGE]
    assert "| `BrandNewKnob` | `x` | text | a new knob |" in rewritten  # ungrouped parameters still get a row


def test_a_model_added_to_the_catalogue_makes_the_models_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [*docs_pages.built_in_models(), {"id": "doubao-seedance-9-0-260101", "modes": ["first_frame"]}]
    monkeypatch.setattr(docs_pages, "built_in_models", lambda: rows)
    assert docs_pages.stale_pages() == [docs_pages.MODELS_PAGE]


def test_every_template_parameter_has_a_row_in_its_console_group() -> None:
    page = docs_pages.CONFIGURATION_PAGE.read_text(encoding="utf-8")
    template = load_template()
    for name, spec in template["Parameters"].items():
        assert re.search(rf"^\| `{name}` \|", page, flags=re.M), name
        assert " ".join(spec["Description"].split())[:60] in page, name
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    for group in groups:
        assert f"### {group['Label']['default']}" in page


def test_the_models_table_shows_fields_the_generator_does_not_know_yet() -> None:
    row: dict[str, Any] = {
        "id": "m-1",
        "modes": ["first_frame", "reference_images"],
        "max_reference_images": 3,
        "durations": [4, 5, 6, 7],
        "resolutions": ["720p"],
        "audio": True,
        "price_per_million_tokens": "2.5 USD",
    }
    table = docs_pages.models_markdown([row])
    assert (
        "| `m-1` | — | first frame; 1-3 reference images | 4-7 | 720p | yes | price_per_million_tokens: 2.5 USD |"
        in table
    )


def test_every_built_in_model_has_a_row() -> None:
    page = docs_pages.MODELS_PAGE.read_text(encoding="utf-8")
    for spec in docs_pages.built_in_models():
        assert f"| `{spec.id}` |" in page


def test_the_readme_is_a_short_front_door_that_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands[:2] == ["make demo", "make test"]
    # Every page it links to exists.
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO_ROOT / target).is_file(), target


def test_the_development_page_names_every_module_of_the_layer_the_simulator_and_the_functions() -> None:
    """The code-layout table is how a newcomer finds a behaviour: a module it does not name is a module lost."""
    root = docs_pages.DOCS_DIR.parent
    page = (docs_pages.DOCS_DIR / "development.md").read_text(encoding="utf-8")
    roots = ["layers/common/seedance_pipeline", "dev/seedance_simulator", "functions"]
    modules = [
        path
        for folder in roots
        for path in sorted((root / folder).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py")
    ]
    assert len(modules) > 80
    missing = [
        str(path.relative_to(root))
        for path in modules
        if "functions" not in path.parts and f"`{path.name}`" not in page
    ]
    # A handler is named with its folder, as its CodeUri in template.yaml.
    missing += [
        str(path.relative_to(root))
        for path in modules
        if "functions" in path.parts and f"{path.parent.name}/{path.name}" not in page
    ]
    assert missing == []
