"""A MkDocs hook (mkdocs.yml `hooks:`): links from a page to the repository's source files become links to the source.

A page may link to code beside the docs, `[model_catalogue.py](../layers/.../model_catalogue.py)`, which reads well on
GitHub but names no page of the site, so `mkdocs build --strict` would refuse it. This hook rewrites each such link
to the file under the site's `repo_url` (`<repo_url>/blob/main/<path>`), and warns (a failure under --strict) when
the file does not exist in the repository, so a source link cannot rot either. Offline: it reads the working tree.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.source_links")
# A Markdown link target that climbs out of docs/: ](../path) or ](../path#anchor).
_OUTSIDE_DOCS = re.compile(r"\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    repo = Path(config["config_file_path"]).resolve().parent
    page_dir = (docs_dir / page.file.src_path).parent
    repo_url = str(config.get("repo_url") or "").rstrip("/")

    def rewrite(match: re.Match[str]) -> str:
        target = (page_dir / match.group(1)).resolve()
        if not target.is_relative_to(repo) or not target.exists():
            log.warning(f"{page.file.src_path}: the link {match.group(1)} names no file of the repository")
            return match.group(0)
        return f"]({repo_url}/blob/main/{target.relative_to(repo).as_posix()}{match.group(2) or ''})"

    return _OUTSIDE_DOCS.sub(rewrite, markdown)
