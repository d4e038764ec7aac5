"""README.md and docs/: every page's bash blocks are run by the README test, every link resolves, and
README.md and docs/api.md list exactly the supported actions."""

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


_SUPPORTED_LINE = re.compile(r"^Supported actions: (?P<line>.+)$", re.M)
_ACTIONS_BULLET = re.compile(r"^- (?P<names>(?:`[A-Za-z0-9_]+`(?:, )?)+):", re.M)


def _quoted_names(text: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z0-9_]+)`", text))


def test_the_readme_lists_exactly_the_supported_actions_and_the_400_for_any_other() -> None:
    from enrollment.action_names import SUPPORTED_ACTIONS

    [line] = [m["line"] for m in _SUPPORTED_LINE.finditer((ROOT / "README.md").read_text())]
    assert _quoted_names(line) - {"400"} == set(SUPPORTED_ACTIONS)
    assert "any other action name gets `400` naming it" in line


def test_the_api_reference_describes_every_supported_action_and_no_other() -> None:
    from enrollment.action_names import SUPPORTED_ACTIONS

    described = {
        name for m in _ACTIONS_BULLET.finditer((ROOT / "docs/api.md").read_text()) for name in _quoted_names(m["names"])
    }
    assert described == set(SUPPORTED_ACTIONS)
