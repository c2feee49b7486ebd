"""LLM-as-judge: a rubric, the reply and the reference go to a judge model, which answers a score.

    metric: llm_judge                      # in a dataset card
    metric_options:
      rubric: "Is the answer correct and polite?"
      scale: 5                              # the judge answers 1..5; stored as (score - 1) / 4
      model: gpt-4o-mini                    # optional; default the configured endpoint and model

The judge's requests go through DSPy's cache like every other call, so re-runs are free. A reply
the judge scores without a number in range counts 0, and the judge's raw answer is kept.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from promptyard.errors import UserError
from promptyard.evaluation.metrics import Metric

__all__ = ["LLMJudge", "JUDGE_PROMPT"]

JUDGE_PROMPT = """You grade an answer. Rubric: {rubric}

Reference answer: {gold}

Answer to grade: {reply}

Give a score from 1 (worst) to {scale} (best). Reply with the number only."""

_NUMBER = re.compile(r"\b(\d+(?:\.\d+)?)\b")


@dataclass
class LLMJudge(Metric):
    rubric: str = ""
    scale: int = 5
    model: str | None = None
    labels: list[str] = field(default_factory=list)
    budget: Any = field(default=None, repr=False)  # the run's Budget: the judge's requests count too
    name: str = "llm_judge"
    _lm: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not str(self.rubric).strip():
            raise UserError("Metric llm_judge needs a rubric: set metric_options: {rubric: \"...\"} in the card.")
        if not isinstance(self.scale, int) or self.scale < 2:
            raise UserError(f"llm_judge scale must be an integer ≥ 2, got {self.scale!r}.")

    def lm(self):
        with self._lock:
            if self._lm is None:
                from promptyard.runtime import Endpoint, make_lm
                from promptyard.runtime import get_settings

                settings = get_settings()
                endpoint = Endpoint.from_settings(settings)
                if self.model:
                    endpoint = Endpoint(endpoint.base_url, self.model, endpoint.api_key, endpoint.timeout)
                self._lm = make_lm(endpoint, cache=settings.lm_cache, budget=self.budget, max_tokens=8)
            return self._lm

    def grade(self, reply: str, gold: str) -> tuple[float, str]:
        prompt = JUDGE_PROMPT.format(rubric=self.rubric, gold=gold, reply=reply, scale=self.scale)
        response = self.lm().forward(messages=[{"role": "user", "content": prompt}])
        answer = response.choices[0].message.content or ""
        found = _NUMBER.search(answer)
        value = float(found.group(1)) if found else None
        if value is None or not 1 <= value <= self.scale:
            return 0.0, answer
        return (value - 1) / (self.scale - 1), answer

    def score(self, prediction: str, gold: str) -> float:
        return self.grade(prediction, gold)[0]
