"""Planning a run's LM calls so that the final test can always be paid for.

A run spends calls on the optimizer's search, on scoring candidates on validation and on scoring
the seed and the best candidate on the test split. While the optimizer searches, the calls for
the test split and for validating one or two candidates are held back; once it has proposed,
only the test split's share is held back, and candidates that no longer fit are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptyard.errors import UserError

__all__ = ["BudgetPlan"]


@dataclass(frozen=True)
class BudgetPlan:
    max_calls: int | None
    validation: int  # examples per validation scoring
    test: int  # examples per test scoring
    tokens_per_request: float = 0.0  # measured on the baseline, to hold back tokens and time like calls
    seconds_per_request: float = 0.0
    attempts_per_request: float = 1.0  # HTTP attempts per answered request (retries), measured on the baseline

    RETRY_HEADROOM = 0.05  # on top of the measured retry rate: bursts come and go

    def measured(self, requests: int, tokens: int, seconds: float, attempts_per_request: float = 1.0) -> BudgetPlan:
        """The same plan, with what one request costs as measured (on the baseline's validation scoring):
        tokens, seconds, and HTTP attempts (a flaky endpoint's retries are calls too)."""
        from dataclasses import replace

        return replace(self, tokens_per_request=tokens / max(1, requests), seconds_per_request=seconds / max(1, requests),
                       attempts_per_request=max(1.0, attempts_per_request))

    def _reserve(self, requests: int) -> dict:
        import math

        calls = requests if self.attempts_per_request <= 1.0 else \
            math.ceil(requests * self.attempts_per_request * (1 + self.RETRY_HEADROOM))
        return {"calls": calls, "tokens": int(requests * self.tokens_per_request),
                "seconds": requests * self.seconds_per_request * self.attempts_per_request}

    @property
    def search_reserve(self) -> dict:
        """Held back from the search: the test split and one or two candidates on validation (calls, tokens, s)."""
        return self._reserve(self.held_during_search)

    @property
    def test_reserve(self) -> dict:
        """What scoring both prompts on the test split is expected to take: calls, tokens, seconds."""
        return self._reserve(2 * self.test)

    @property
    def minimum_calls(self) -> int:
        """The seed and one candidate on validation, and both on the test split."""
        return 2 * self.validation + 2 * self.test

    def check(self) -> None:
        """Refuse, before any call, a call budget that cannot pay for one candidate."""
        if self.max_calls is not None and self.max_calls < self.minimum_calls:
            raise UserError(
                f"budget_calls={self.max_calls} cannot cover one candidate: the baseline and one candidate on "
                f"validation ({self.validation} each) and both on test ({self.test} each) take "
                f"{self.minimum_calls} calls. Raise the budget, or lower --limit-validation / --limit-test.")

    @property
    def held_during_search(self) -> int:
        """Calls the search may not use: the test split and validating one or (when affordable) two candidates."""
        spare = (self.max_calls or 0) - 2 * self.test - self.validation
        candidates = max(1, min(2, spare // max(1, self.validation)))
        return 2 * self.test + self.validation * candidates

    @property
    def held_for_test(self) -> int:
        return self.test_reserve["calls"]

    def affordable_candidates(self, calls_used: int, proposed: int, *, tokens_used: int = 0,
                              max_tokens: int | None = None) -> int:
        """How many of `proposed` candidates can be scored on validation with what is left (calls and tokens)."""
        if not self.validation:
            return proposed
        affordable = proposed
        if self.max_calls is not None:
            affordable = min(affordable, (self.max_calls - self.held_for_test - calls_used) // self.validation)
        if max_tokens is not None and self.tokens_per_request:
            left = max_tokens - self.test_reserve["tokens"] - tokens_used
            affordable = min(affordable, int(left // (self.validation * self.tokens_per_request)))
        return max(0, affordable)
