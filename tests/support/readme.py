"""The fenced bash blocks of README.md, in order, with the ones marked to be skipped left out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.template import ROOT

_FENCE = re.compile(r"(?P<marker><!-- readme-test: skip \((?P<why>[^)]*)\) -->\n)?```bash\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Block:
    body: str
    skip_reason: str | None


def bash_blocks() -> list[Block]:
    text = (ROOT / "README.md").read_text()
    return [Block(match["body"], match["why"]) for match in _FENCE.finditer(text)]
