"""The documentation site's sources: every page of the navigation exists, and the CLI
reference generated from the code covers every command (``make docs`` builds the site with
``mkdocs build --strict``, where a broken link or reference is an error)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _nav_files(entries: list[object]) -> list[str]:
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, dict):
            for value in entry.values():
                found += _nav_files(value) if isinstance(value, list) else [str(value)]
        else:
            found.append(str(entry))
    return found


def test_every_page_of_the_navigation_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_files(config["nav"])
    assert {"index.md", "production.md", "reference/cli.md", "changelog.md"} <= set(pages)
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
    production = (ROOT / "docs" / "production.md").read_text()
    for topic in ("systemd", "PostgreSQL", "TLS", "Backups", "Upgrades", "Several servers"):
        assert topic in production
    assert "scrape_configs" in production


def test_the_cli_reference_is_generated_for_every_command() -> None:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs/hooks/cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown("# CLI\n\n" + hook.MARKER + "\n")
    assert hook.MARKER not in page
    headings = set(re.findall(r"^#+ `(kaon[^`]*)`", page, re.M))
    for command in ("kaon", "kaon run", "kaon config show", "kaon token create", "kaon cache list"):
        assert command in headings
    assert "--metrics-public" in page and "--profile NAME" in page
