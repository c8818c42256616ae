"""The docs: generated references up to date, a short README naming pages that exist, and a
nav that holds every page (mkdocs.yml)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 200


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no docs/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_generated_references_are_up_to_date() -> None:
    generate = _generator()
    stale = [str(path.relative_to(ROOT)) for path in generate.stale()]
    assert stale == [], f"stale: {stale}; run `python3 docs/generate.py`"


def test_generated_references_are_deterministic() -> None:
    generate = _generator()
    assert generate.pages() == generate.pages()


def test_generated_references_say_so() -> None:
    for name in ("cli.md", "settings.md", "errors.md"):
        first = (DOCS / "reference" / name).read_text().splitlines()[0]
        assert first.startswith("<!--") and "docs/generate.py" in first and "do not edit" in first


def test_cli_reference_leaves_old_flag_names_out_of_the_tables() -> None:
    from longcert import tasks

    text = _generator().cli_page()
    for (task_name, _param), olds in getattr(tasks, "OLD_FLAGS", {}).items():
        section = text.split(f"\n## {task_name}\n", 1)[1].split("\n## ", 1)[0]
        flag_cells = [line.split(" | ")[0].removeprefix("| ").split(", ")
                      for line in section.splitlines() if line.startswith("| `-")]
        assert flag_cells, task_name
        for old in olds:
            flag = f"`--{old.replace('_', '-')}`"
            assert not any(flag in cell for cell in flag_cells), (task_name, flag)


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_names_only_docs_that_exist() -> None:
    named = set(re.findall(r"docs/[\w./-]+\.md", (ROOT / "README.md").read_text()))
    assert named, "the README links to no docs page"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert missing == []


def test_nav_holds_every_page_and_only_pages_that_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs"
    assert config["strict"] is True
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    missing = sorted(page for page in nav if not (DOCS / page).is_file())
    assert missing == []
    pages = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert sorted(nav) == pages


def test_the_task_table_names_every_task() -> None:
    """docs/index.md's table of tasks has a row for every task the command line has."""
    from longcert.tasks import namespace

    rows = set(re.findall(r"^\| `([a-z-]+)` \|", (DOCS / "index.md").read_text(), re.M))
    assert set(namespace.task_names) <= rows, set(namespace.task_names) - rows
