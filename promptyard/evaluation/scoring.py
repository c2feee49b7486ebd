"""Run a template over examples concurrently and collect replies, scores, latency and tokens.

Each example is one chat request whose single user message is the rendered template: exactly
what an app does with `load_prompt(...).format(...)`. Requests go through `dspy.LM`, so DSPy's
disk cache answers repeated work without calling the endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from promptyard.errors import BudgetExhausted, EndpointUnreachableError, UserError
from promptyard.registry import GenerationConfig
from promptyard.runtime import is_transport_error
from promptyard.evaluation.metrics import Metric
from promptyard.registry import render

__all__ = ["ExampleResult", "ScoreResult", "score_template"]


@dataclass
class ExampleResult:
    inputs: dict
    gold: str
    reply: str
    prediction: str
    score: float
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str = ""


@dataclass
class ScoreResult:
    template: str
    examples: list[ExampleResult] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        return [e.score for e in self.examples]

    @property
    def accuracy(self) -> float:
        return sum(self.scores) / len(self.examples) if self.examples else 0.0

    @property
    def mean_latency_s(self) -> float:
        live = [e.latency_s for e in self.examples if not e.cached]
        return sum(live) / len(live) if live else 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(e.prompt_tokens for e in self.examples)

    @property
    def completion_tokens(self) -> int:
        return sum(e.completion_tokens for e in self.examples)

    @property
    def lm_calls(self) -> int:
        return sum(1 for e in self.examples if not e.cached)

    @property
    def errors(self) -> int:
        return sum(1 for e in self.examples if e.error)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}mean_latency_s": self.mean_latency_s,
            f"{prefix}prompt_tokens": float(self.prompt_tokens),
            f"{prefix}completion_tokens": float(self.completion_tokens),
            f"{prefix}lm_calls": float(self.lm_calls),
            f"{prefix}errors": float(self.errors),
        }

    def table(self) -> dict[str, list]:
        """Per-example columns, for `mlflow.log_table`."""
        return {
            "inputs": [str(e.inputs) for e in self.examples],
            "gold": [e.gold for e in self.examples],
            "reply": [e.reply for e in self.examples],
            "prediction": [e.prediction for e in self.examples],
            "score": [e.score for e in self.examples],
            "latency_s": [round(e.latency_s, 4) for e in self.examples],
            "error": [e.error for e in self.examples],
        }


def _score_one(lm, template: str, row: dict, input_fields, label_field, metric: Metric, kwargs) -> ExampleResult:
    inputs = {name: row[name] for name in input_fields}
    messages = [{"role": "user", "content": render(template, inputs)}]
    started = time.perf_counter()
    try:
        response = lm.forward(messages=messages, **kwargs)
    except Exception as exc:  # one failed request scores 0; a dead endpoint or a spent budget stops the run
        if isinstance(exc, BudgetExhausted):
            raise
        if is_transport_error(exc):
            raise EndpointUnreachableError(
                f"The LLM endpoint stopped answering while scoring ({exc}). Check it with "
                "`promptyard status`, restart it with `promptyard up`, then run again."
            ) from None
        return ExampleResult(inputs, str(row[label_field]), "", "", 0.0, time.perf_counter() - started,
                             error=f"{type(exc).__name__}: {exc}"[:300])
    latency = time.perf_counter() - started
    reply = response.choices[0].message.content or ""
    usage = response.get("usage") or {}
    try:
        prediction = metric.parse(reply)
        value = metric.score(prediction, str(row[label_field]))
    except Exception as exc:
        raise UserError(
            f"Metric {metric.name!r} raised {type(exc).__name__}: {exc} (reply {reply[:80]!r}, gold "
            f"{row[label_field]!r}). Fix the metric: it must return a number for any reply."
        ) from exc
    return ExampleResult(
        inputs=inputs,
        gold=str(row[label_field]),
        reply=reply,
        prediction=prediction,
        score=value,
        latency_s=latency,
        prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
        completion_tokens=int(usage.get("completion_tokens", 0) or 0),
        cached=bool(response.get("cache_hit", False)),
    )


def score_template(
    template: str,
    rows: Sequence[dict],
    *,
    lm,
    metric: Metric,
    input_fields: Sequence[str],
    label_field: str,
    generation: GenerationConfig | None = None,
    concurrency: int = 4,
    on_example: Callable[[ExampleResult], None] | None = None,
) -> ScoreResult:
    """Score `template` on `rows`, `concurrency` requests at a time, results in row order."""
    kwargs = (generation or GenerationConfig()).request_kwargs()
    result = ScoreResult(template=template)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(_score_one, lm, template, row, input_fields, label_field, metric, kwargs)
            for row in rows
        ]
        for future in futures:
            example = future.result()
            result.examples.append(example)
            if on_example:
                on_example(example)
    return result
