"""Does the gain transfer? The seed and the winner re-scored on a second model (`--also-on`).

A prompt tuned on one model can win there and lose elsewhere. With `--also-on ENDPOINT/MODEL`
the seed and the winner are scored again on the test split through another OpenAI-compatible
endpoint, and both differences (winner − seed) are recorded with their paired intervals: on the
model the optimization ran on, and on the other one.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptyard.errors import UserError
from promptyard.evaluation import PairedComparison

__all__ = ["OtherModel", "Portability", "parse_also_on"]


@dataclass(frozen=True)
class OtherModel:
    """A second model: its OpenAI-compatible base URL and its name."""

    base_url: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.model} at {self.base_url}"


def parse_also_on(spec: str) -> OtherModel:
    """`http://host:port/v1/MODEL` -> (base URL, model); a clear message naming the value otherwise."""
    text = str(spec).strip()
    base, _, model = text.rstrip("/").rpartition("/")
    if not text.startswith(("http://", "https://")) or text.endswith("/") or not model or base.endswith(":/") \
            or base in ("http:", "https:"):
        raise UserError(f"--also-on {spec!r} is not ENDPOINT/MODEL: give the OpenAI-compatible base URL followed by "
                        "the model name, e.g. --also-on http://127.0.0.1:8089/v1/smollm2-135m-instruct or "
                        "--also-on https://api.openai.com/v1/gpt-4o-mini.")
    return OtherModel(base, model)


@dataclass(frozen=True)
class Portability:
    """The winner against the seed on the model the run optimized for, and on another model."""

    other: OtherModel
    here: PairedComparison  # winner − seed on the optimization's model (the test split)
    there: PairedComparison | None  # the same on the other model; None when it could not be scored
    errors: int = 0  # requests to the other model that failed after their retries
    calls: int = 0
    failure: str = ""  # why the other model could not be scored

    @property
    def transfers(self) -> bool | None:
        """True: a significant gain there too; False: not; None: not measured."""
        return None if self.there is None else self.there.low > 0

    def describe(self) -> str:
        here = f"{self.here.diff:+.3f} [{self.here.low:+.3f}, {self.here.high:+.3f}]"
        if self.there is None:
            return f"on {self.other.label}: not measured ({self.failure}); here {here}"
        there = f"{self.there.diff:+.3f} [{self.there.low:+.3f}, {self.there.high:+.3f}]"
        verdict = ("the gain transfers" if self.transfers else
                   "the winner is significantly worse there" if self.there.high < 0 else "no significant gain there")
        return (f"on {self.other.label}: seed {self.there.baseline:.3f}, winner {self.there.candidate:.3f}, difference "
                f"{there} (n={self.there.n}) against {here} here: {verdict}")
