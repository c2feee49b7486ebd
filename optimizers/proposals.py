"""Reading a proposer's reply: the instruction it wrote, without labels, quotes or chatter."""

from __future__ import annotations

import re

__all__ = ["clean_proposal"]

_LEADING_LABEL = re.compile(
    r"^\s*[*#>\-\s]*(?:(?:new|improved|proposed|rewritten|better)\s+)?instructions?\s*(?:#\s*\d+)?\s*[:\-]\s*",
    re.IGNORECASE,
)


_SCORE_LINE = re.compile(r"^\s*(?:resulting\s+)?score\b", re.IGNORECASE)


def clean_proposal(text: str) -> str:
    """The instruction inside a proposer's reply: label, quotes and trailing chatter removed."""
    text = _LEADING_LABEL.sub("", text.strip(), count=1).lstrip("*#> ")
    first = text.split("\n\n")[0].strip()
    kept = []
    for line in first.splitlines():  # small models echo the score lines of their prompt
        if _SCORE_LINE.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip().strip('"').strip("'").strip()[:800]
