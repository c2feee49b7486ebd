"""Metrics: turn a model reply into a prediction and score it against the gold answer.

A metric is a small object with `parse(reply) -> prediction` and `score(prediction, gold) -> float`
in [0, 1]. Each dataset card names its default metric.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


__all__ = [
    "Metric",
    "ExactLabel",
    "Contains",
    "NumericAnswer",
    "RegexMatch",
    "TokenF1",
    "JsonValid",
    "CustomMetric",
    "normalize",
]

_NON_WORD = re.compile(r"[^a-z0-9]+")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lower case, every run of non-alphanumerics turned into one space."""
    return _NON_WORD.sub(" ", str(text).lower()).strip()


class Metric:
    name = "metric"

    def parse(self, reply: str) -> str:
        return reply.strip()

    def score(self, prediction: str, gold: str) -> float:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ExactLabel(Metric):
    """The first label of the label set found in the reply, compared with the gold label.

    A label counts as found where its words appear together ("add to playlist" for
    `add_to_playlist`), or failing that where all its words appear; the earliest one wins.
    Without a label set, the whole reply is compared.
    """

    labels: Sequence[str] = field(default_factory=list)
    name = "exact_label"

    def parse(self, reply: str) -> str:
        if not self.labels:
            return reply.strip()
        text = f" {normalize(reply)} "
        words = text.split()
        best: tuple[int, int, str] | None = None
        for label in self.labels:
            phrase = normalize(label)
            pos = text.find(f" {phrase} ")
            if pos < 0:
                positions = [words.index(w) for w in phrase.split() if w in words]
                if len(positions) < len(phrase.split()):
                    continue
                pos = len(" ".join(words[: max(positions) + 1]))
            key = (pos, -len(phrase), label)
            if best is None or key < best:
                best = key
        return best[2] if best else ""

    def score(self, prediction: str, gold: str) -> float:
        return float(normalize(prediction) == normalize(gold))


@dataclass
class Contains(Metric):
    """1 when the gold answer appears in the reply (normalised)."""

    labels: Sequence[str] = field(default_factory=list)
    name = "contains"

    def score(self, prediction: str, gold: str) -> float:
        return float(f" {normalize(gold)} " in f" {normalize(prediction)} ")


@dataclass
class NumericAnswer(Metric):
    """The last number in the reply, compared numerically with the gold answer."""

    labels: Sequence[str] = field(default_factory=list)
    name = "numeric"

    def parse(self, reply: str) -> str:
        numbers = _NUMBER.findall(reply)
        return numbers[-1].replace(",", "") if numbers else ""

    def score(self, prediction: str, gold: str) -> float:
        try:
            return float(abs(float(prediction) - float(str(gold).replace(",", ""))) < 1e-6)
        except ValueError:
            return 0.0


@dataclass
class RegexMatch(Metric):
    """1 when `pattern` (a regular expression, `{gold}` replaced by the escaped gold answer) matches."""

    labels: Sequence[str] = field(default_factory=list)
    pattern: str = r"\b{gold}\b"
    name = "regex"

    def score(self, prediction: str, gold: str) -> float:
        regex = self.pattern.replace("{gold}", re.escape(str(gold)))
        return float(re.search(regex, prediction, flags=re.IGNORECASE) is not None)


@dataclass
class TokenF1(Metric):
    """Token-overlap F1 of the normalised reply and gold answer (SQuAD style)."""

    labels: Sequence[str] = field(default_factory=list)
    name = "token_f1"

    def score(self, prediction: str, gold: str) -> float:
        pred, ref = normalize(prediction).split(), normalize(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if not pred or not ref or not common:
            return float(pred == ref)
        precision, recall = common / len(pred), common / len(ref)
        return 2 * precision * recall / (precision + recall)


@dataclass
class JsonValid(Metric):
    """1 when the reply is JSON that validates against `schema` (the gold answer is not used)."""

    labels: Sequence[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)
    name = "json_valid"

    def score(self, prediction: str, gold: str) -> float:
        import jsonschema

        try:
            jsonschema.validate(json.loads(prediction), self.schema)
        except (ValueError, jsonschema.ValidationError):
            return 0.0
        return 1.0


@dataclass
class CustomMetric(Metric):
    """A user function `(reply, gold) -> float`, named by dotted path `package.module:function`."""

    function: Callable[[str, str], float]
    path: str
    labels: Sequence[str] = field(default_factory=list)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.path

    def score(self, prediction: str, gold: str) -> float:
        return float(self.function(prediction, gold))
