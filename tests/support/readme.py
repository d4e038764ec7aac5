"""The fenced bash blocks of README.md and docs/*.md, in the order the pages are read, with the ones
marked to be skipped left out.

The pages run one after the other on one emulator: README.md first (`make demo` deploys the stack),
docs/deploy-to-aws.md last (its cleanup block deletes the stack and stops the emulator). A block may
rely on what an earlier block left on the stack, never on an earlier block's shell variables: each
runs in a bash process of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.template import ROOT

PAGES = (
    "README.md",
    "docs/working-locally.md",
    "docs/api.md",
    "docs/seeds-step-by-step.md",
    "docs/operations.md",
    "docs/architecture.md",
    "docs/reliability.md",
    "docs/performance-and-cost.md",
    "docs/deploy-to-aws.md",
)
_FENCE = re.compile(r"(?P<marker><!-- readme-test: skip \((?P<why>[^)]*)\) -->\n)?```bash\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    page: str
    body: str
    skip_reason: str | None


def bash_blocks() -> list[Block]:
    return [
        Block(page, match["body"], match["why"])
        for page in PAGES
        for match in _FENCE.finditer((ROOT / page).read_text())
    ]
