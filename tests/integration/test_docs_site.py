"""`make docs`: the site builds with `mkdocs build --strict`, offline, and a broken link or anchor fails the build.

Offline is checked by pointing every proxy variable at a closed port: a theme or plugin that fetched anything at
build time would fail or hang (the build has a timeout) instead of writing the site.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seedance_local.harness import REPO_ROOT

MKDOCS_YML = REPO_ROOT / "mkdocs.yml"
CLOSED = "http://127.0.0.1:9"


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env |= {"HTTP_PROXY": CLOSED, "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED, "https_proxy": CLOSED}
    env["NO_MKDOCS_2_WARNING"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_site_builds_strict_and_offline_with_every_page_search_and_diagrams(tmp_path: Path) -> None:
    result = _mkdocs(MKDOCS_YML, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    for page in ("getting-started", "configuration", "models", "inputs", "outputs", "operating", "callbacks",
                 "reliability", "performance", "security", "known-limits", "development", "provider-api"):  # fmt: skip
        assert (site / page / "index.html").is_file(), page
    assert (site / "search" / "search_index.json").is_file()
    architecture = (site / "architecture" / "index.html").read_text(encoding="utf-8")
    assert architecture.count('class="mermaid"') >= 3  # the flow, the job lifecycle, one submission
    # No web font is linked (theme.font: false): nothing to fetch when the page is read offline either.
    assert "fonts.googleapis.com" not in architecture


def _scratch_site(tmp_path: Path, page: str, *, hook: bool = False) -> Path:
    """The project's mkdocs.yml settings (theme, extensions, validation) over a two-page docs folder."""
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    (docs / "index.md").write_text("# Home\n\n## A heading\n\nSee [the other page](other.md).\n", encoding="utf-8")
    (docs / "other.md").write_text(page, encoding="utf-8")
    settings = MKDOCS_YML.read_text(encoding="utf-8").split("\nnav:", 1)[0]
    settings = settings.replace("docs_dir: docs", f"docs_dir: {docs}")
    hook_path = REPO_ROOT / "dev/seedance_local/docs_source_links.py"
    settings = settings.replace(
        "\nhooks:\n  - dev/seedance_local/docs_source_links.py", f"\nhooks:\n  - {hook_path}" if hook else ""
    )
    config = tmp_path / "mkdocs.yml"
    config.write_text(settings + "\nnav:\n  - index.md\n  - other.md\n", encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("link", "complaint"),
    [("[gone](missing.md)", "missing.md"), ("[no anchor](index.md#no-such-heading)", "no-such-heading")],
)
def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path, link: str, complaint: str) -> None:
    good = _scratch_site(tmp_path / "good", "# Other\n\nBack [home](index.md#a-heading).\n")
    assert _mkdocs(good, tmp_path / "good-site").returncode == 0
    bad = _scratch_site(tmp_path / "bad", f"# Other\n\nBack {link}.\n")
    result = _mkdocs(bad, tmp_path / "bad-site")
    assert result.returncode != 0
    assert complaint in result.stderr


def test_a_link_to_a_source_file_that_does_not_exist_fails_the_strict_build(tmp_path: Path) -> None:
    # Pages may link to the code (../layers/...): the hook points such links at the repository and checks the file
    # exists there (the scratch site's "repository" is the folder of its mkdocs.yml).
    good = _scratch_site(tmp_path / "good", "# Other\n\n[code](../layers/module.py)\n", hook=True)
    (tmp_path / "good" / "layers").mkdir()
    (tmp_path / "good" / "layers" / "module.py").write_text("", encoding="utf-8")
    assert _mkdocs(good, tmp_path / "good-site").returncode == 0
    html = (tmp_path / "good-site" / "other" / "index.html").read_text(encoding="utf-8")
    assert "https://github.com/OWNER/seedance-s3-pipeline/blob/main/layers/module.py" in html
    bad = _scratch_site(tmp_path / "bad", "# Other\n\n[code](../layers/no_such_module.py)\n", hook=True)
    result = _mkdocs(bad, tmp_path / "bad-site")
    assert result.returncode != 0
    assert "no_such_module.py" in result.stderr
