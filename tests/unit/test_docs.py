"""README.md and docs/: every page's bash blocks are run by the README test, and every link resolves."""

from __future__ import annotations

import re

from tests.support.readme import PAGES, bash_blocks
from tests.support.template import ROOT

README_MAX_LINES = 250
_LINK = re.compile(r"\]\((?P<target>[^)#\s]*)(?:#(?P<anchor>[^)\s]*))?\)")
_HEADING = re.compile(r"^#{1,6} (?P<title>.+)$", re.M)


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", m["title"].lower()).replace(" ", "-") for m in _HEADING.finditer(text)}


def test_every_docs_page_is_run_by_the_readme_test() -> None:
    pages = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert pages == set(PAGES) - {"README.md"}
    assert PAGES[0] == "README.md"
    assert PAGES[-1] == "docs/deploy-to-aws.md"  # its cleanup block stops the emulator: it runs last


def test_the_cleanup_block_runs_last() -> None:
    last = bash_blocks()[-1]
    assert "delete-stack" in last.body
    assert "make down" in last.body


def test_the_readme_fits_a_newcomer() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_relative_links_point_to_files_and_headings_that_exist() -> None:
    for page in PAGES:
        text = (ROOT / page).read_text()
        for match in _LINK.finditer(text):
            target, anchor = match["target"], match["anchor"]
            if "://" in target:
                continue
            linked = (ROOT / page).parent / target if target else ROOT / page
            assert linked.exists(), (page, target)
            if anchor:
                assert anchor in _anchors(linked.read_text()), (page, target, anchor)
