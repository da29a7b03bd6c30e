"""template.yaml is publishable to the Serverless Application Repository with `sam package` / `sam publish`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPDX_IDS_OF_THE_LICENCE_FILE = {"MIT": "MIT License"}


def test_the_application_metadata_names_everything_the_repository_requires(sam: dict[str, Any]) -> None:
    app = sam["Metadata"]["AWS::ServerlessRepo::Application"]
    for field in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"):
        assert app.get(field), f"AWS::ServerlessRepo::Application lacks {field}"
    assert app["SourceCodeUrl"].startswith("https://") and app["HomePageUrl"].startswith("https://")
    assert len(app["Description"]) <= 256  # the repository's limit


def test_the_licence_and_readme_it_names_are_the_repositorys_own(sam: dict[str, Any]) -> None:
    app = sam["Metadata"]["AWS::ServerlessRepo::Application"]
    licence = (ROOT / app["LicenseUrl"]).read_text(encoding="utf-8")
    assert SPDX_IDS_OF_THE_LICENCE_FILE[app["SpdxLicenseId"]] in licence
    assert "sam publish" in (ROOT / app["ReadmeUrl"]).read_text(encoding="utf-8")


def test_the_published_version_is_the_projects_version(sam: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert sam["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"] == project["version"]
