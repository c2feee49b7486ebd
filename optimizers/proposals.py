"""Reading a proposer's reply: the instruction it wrote, without labels, quotes, meta-text or echoes.

Small proposers wrap the instruction in talk about it ("The requested instruction is:",
"Rewrite:", "Here is the improved instruction:"), put it in quotes, or copy the task's own text
(an example input, the template's body, the score lines of their prompt) into it. `clean_proposal`
removes what can be removed; `usable_proposal` also discards what is left when it is not an
instruction a reviewer could read (too short, only a label, or mostly echoed input), returning "".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["clean_proposal", "usable_proposal", "task_echoes", "MIN_WORDS"]

MIN_WORDS = 3  # fewer words than this is not an instruction

_LEADING_LABEL = re.compile(
    r"^\s*[*#>\-\s]*(?:(?:new|improved|proposed|rewritten|revised|better|final)\s+)?instructions?\s*(?:#\s*\d+)?"
    r"\s*[:\-]\s*",
    re.IGNORECASE,
)
# talk about the instruction before it: removed again and again from the start
_META = [re.compile(p, re.IGNORECASE) for p in (
    r"^(?:sure|okay|ok|certainly|of course)\s*[,.!:]\s*",
    r"^(?:here\s+is|here's|below\s+is)\s+(?:the|a|an|my|your)\s+(?:\w+\s+){0,3}?(?:instruction|version|prompt|"
    r"rewrite)s?\s*(?:for\s+[^:]{0,40})?[:.\-]\s*",
    r"^(?:the\s+)?(?:requested|new|improved|rewritten|revised|proposed|better|final)\s+(?:\w+\s+)?(?:instruction|"
    r"prompt)s?\s+(?:is|reads|would be|could be)\s*[:\-]?\s*",
    r"^(?:rewrite|rewritten|revision|revised|answer|output|response|prompt|proposal|proposed)\s*[:\-]\s*",
    r"^(?:[*#>\-]+\s*)",
)]
_SCORE_LINE = re.compile(r"^\s*(?:resulting\s+)?score\b", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`", "«": "»"}
_FIELD_LINE = re.compile(r"^\s*([A-Z][A-Za-z _]{0,30}):\s")  # "Review: ...", "Text: ..." — a body line echoed
_WORD = re.compile(r"[A-Za-z0-9']+")


def _strip_meta(text: str) -> str:
    text = _LEADING_LABEL.sub("", text.strip(), count=1).lstrip("*#> ")
    changed = True
    while changed:
        before = text
        for pattern in _META:
            text = pattern.sub("", text, count=1).strip()
        text = _LEADING_LABEL.sub("", text, count=1).strip()
        text = _unquote(text)
        changed = text != before
    return text


def _unquote(text: str) -> str:
    """Quotes around the whole instruction go; a lone opening (or closing double) quote goes too."""
    if not text:
        return text
    first, last = text[0], text[-1]
    if first in _QUOTES and len(text) >= 2 and last == _QUOTES[first] and first not in text[1:-1] \
            and last not in text[1:-1]:
        return text[1:-1].strip()
    if first in _QUOTES and _QUOTES[first] not in text[1:]:
        return text[1:].strip()
    if last in ('"', "”", "»") and text.count(last) == 1 and not any(o in text for o, c in _QUOTES.items()
                                                                      if c == last and o != last):
        return text[:-1].strip()
    return text


def clean_proposal(text: str, echoes: Iterable[str] = ()) -> str:
    """The instruction inside a proposer's reply: label, meta-text, quotes, echoes and trailing chatter removed."""
    text = _strip_meta(text)
    first = text.split("\n\n")[0].strip()
    kept = []
    for line in first.splitlines():  # small models echo the score lines of their prompt, or the template's body
        if _SCORE_LINE.match(line) or "{{" in line or (kept and _FIELD_LINE.match(line)):
            break
        kept.append(line)
    text = _cut_echo("\n".join(kept).strip(), echoes)
    return _unquote(_strip_meta(text).strip().strip('"').strip("'").strip())[:800]


def _cut_echo(text: str, echoes: Iterable[str]) -> str:
    """The text before the first copy of an example input (at least 5 words or 25 characters of one)."""
    lowered = text.lower()
    cut = len(text)
    for echo in echoes:
        for piece in _pieces(str(echo)):
            at = lowered.find(piece)
            if at >= 0:
                cut = min(cut, at)
    return text[:cut].rstrip(" :\"'“”-\n") if cut < len(text) else text


def _pieces(echo: str) -> list[str]:
    """The start of an input, long enough that finding it in a proposal cannot be chance."""
    words = echo.lower().split()
    if len(words) >= 5:
        return [" ".join(words[:5])]
    text = " ".join(words)
    return [text] if len(text) >= 25 else []


def usable_proposal(text: str, echoes: Iterable[str] = (), labels: Sequence[str] = ()) -> str:
    """The cleaned instruction, or "" when what is left is not an instruction (discard the proposal)."""
    cleaned = clean_proposal(text, echoes)
    words = _WORD.findall(cleaned)
    if len(words) < MIN_WORDS:
        return ""
    label_words = {w.lower() for label in labels for w in _WORD.findall(str(label).replace("_", " "))}
    if label_words and all(w.lower() in label_words | {"or", "and", "no", "yes"} for w in words):
        return ""  # only labels: an answer, not an instruction
    answered = re.search(r"\?\s*[\"'”]?\s*([A-Za-z_ ]{1,40})\W*$", cleaned)
    if answered and label_words and all(w.lower() in label_words for w in _WORD.findall(answered.group(1))):
        return ""  # a question followed by its label: an example copied from the data, not an instruction
    return cleaned


def task_echoes(rows: Sequence[dict], input_fields: Sequence[str], limit: int = 200) -> list[str]:
    """Texts a proposer might copy into an instruction: the example inputs it may have been shown."""
    return [str(row[name]) for row in list(rows)[:limit] for name in input_fields if str(row.get(name, "")).strip()]
