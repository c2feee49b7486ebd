"""Run templates over examples concurrently and collect replies, scores, latency and tokens.

Each example is one chat request: the rendered template as a single user message, or a chat
template's rendered messages — exactly what an app does with `load_prompt(...).format(...)`. Requests go through `dspy.LM`, so DSPy's
disk cache answers repeated work without calling the endpoint.

An error is not an answer: a request that still fails after its retries is recorded with its
error and no score: an arm's own statistics use answered examples only, and a comparison of a
candidate with a baseline (`paired_scores`) counts every failed request against the candidate (right
for the baseline, wrong for the candidate), so failures can never make a gain. Comparisons score both arms interleaved, example by example
(`score_templates`), so a burst of failures or slowness falls on both alike. An endpoint that
refuses connections stops the run; `STOP_AFTER` failed requests in a row stop this scoring job
(no answer could come of it) without waiting out every remaining request's retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from promptyard.errors import BudgetExhausted, EndpointUnreachableError, TooManyErrorsError, UserError
from promptyard.evaluation.metrics import Metric
from promptyard.registry import GenerationConfig, PromptTemplate, render_messages
from promptyard.runtime import is_transport_error

__all__ = ["ExampleResult", "ScoreResult", "score_template", "score_templates", "paired_scores", "refuse_if_errors",
           "STOP_AFTER"]

STOP_AFTER = 12  # failed requests in a row (after their retries) that mean the endpoint is down


@dataclass
class ExampleResult:
    inputs: dict
    gold: str
    reply: str
    prediction: str
    score: float | None  # None: the request failed (see `error`); never counted as a wrong answer
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str = ""


@dataclass
class ScoreResult:
    template: PromptTemplate
    examples: list[ExampleResult] = field(default_factory=list)

    @property
    def scores(self) -> list[float | None]:
        return [e.score for e in self.examples]

    @property
    def answered(self) -> list[float]:
        return [e.score for e in self.examples if e.score is not None]

    @property
    def accuracy(self) -> float:
        """Mean score over the answered examples."""
        answered = self.answered
        return sum(answered) / len(answered) if answered else 0.0

    @property
    def errors(self) -> int:
        return sum(1 for e in self.examples if e.score is None)

    @property
    def error_rate(self) -> float:
        return self.errors / len(self.examples) if self.examples else 0.0

    @property
    def mean_latency_s(self) -> float:
        live = [e.latency_s for e in self.examples if not e.cached and e.score is not None]
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


def paired_scores(baseline: ScoreResult, candidate: ScoreResult) -> tuple[list[float], list[float]]:
    """Both arms' scores on every example, in order, a failed request counted in the baseline's favour:
    as a right answer (1) for the baseline and a wrong one (0) for the candidate. Errors can then only
    hide a gain, never make one: dropping failed examples instead would let failures that fall on the
    candidate's hard examples (a longer prompt over the context limit) manufacture a "significant gain"."""
    return ([1.0 if x.score is None else x.score for x in baseline.examples],
            [0.0 if y.score is None else y.score for y in candidate.examples])


def refuse_if_errors(results: Sequence[ScoreResult], limit: float, what: str) -> None:
    """Refuse to decide on results with more failed requests than `limit` allows (a share)."""
    for result in results:
        if result.error_rate > limit:
            last = next(e.error for e in reversed(result.examples) if e.error)
            raise TooManyErrorsError(
                f"{what}: {result.errors} of {len(result.examples)} requests failed after their retries "
                f"({result.error_rate:.1%} > {limit:.0%} allowed by PROMPTYARD_MAX_ERROR_RATE); errors are never "
                f"scored, so nothing is decided. Last error: {last}. Run again when the endpoint is healthy.")


class _Stopper:
    """Counts failures in a row across threads: a refused connection stops the run, a long streak the job."""

    def __init__(self):
        self.in_a_row = 0

    def saw(self, failed: bool, exc: BaseException | None = None) -> None:
        self.in_a_row = self.in_a_row + 1 if failed else 0
        if exc is not None and is_transport_error(exc):
            raise EndpointUnreachableError(
                f"The LLM endpoint stopped answering while scoring ({exc}). Check it with `promptyard status`, "
                "restart it with `promptyard up`, then run again.") from None
        if self.in_a_row >= STOP_AFTER:
            raise TooManyErrorsError(f"{self.in_a_row} requests in a row failed after their retries (last: {exc}); "
                                     "scoring stopped: no answer could come of it.") from None


def _score_one(lm, template: PromptTemplate, row: dict, input_fields, label_field, metric: Metric, kwargs,
               stopper: _Stopper) -> ExampleResult:
    inputs = {name: row[name] for name in input_fields}
    gold = str(row[label_field])
    messages = render_messages(template, inputs)
    started = time.perf_counter()
    try:
        response = lm.forward(messages=messages, **kwargs)
    except BudgetExhausted:
        raise
    except Exception as exc:  # failed after its retries: an error, not a wrong answer
        stopper.saw(True, exc)
        return ExampleResult(inputs, gold, "", "", None, time.perf_counter() - started,
                             error=f"{type(exc).__name__}: {exc}"[:300])
    stopper.saw(False)
    latency = time.perf_counter() - started
    reply = response.choices[0].message.content or ""
    usage = response.get("usage") or {}
    try:
        prediction = metric.parse(reply)
        value = metric.score(prediction, gold)
    except BudgetExhausted:
        raise
    except Exception as exc:
        from dspy.utils.exceptions import LMError

        if isinstance(exc, LMError):  # the metric's own model (a judge) failed after its retries
            return ExampleResult(inputs, gold, reply, "", None, latency, error=f"judge: {type(exc).__name__}: {exc}"[:300])
        raise UserError(
            f"Metric {metric.name!r} raised {type(exc).__name__}: {exc} (reply {reply[:80]!r}, gold "
            f"{row[label_field]!r}). Fix the metric: it must return a number for any reply."
        ) from exc
    return ExampleResult(inputs=inputs, gold=gold, reply=reply, prediction=prediction, score=value, latency_s=latency,
                         prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
                         completion_tokens=int(usage.get("completion_tokens", 0) or 0),
                         cached=bool(response.get("cache_hit", False)))


def score_templates(
    arms: Sequence[tuple[PromptTemplate, GenerationConfig | None]],
    rows: Sequence[dict],
    *,
    lm,
    metric: Metric,
    input_fields: Sequence[str],
    label_field: str,
    concurrency: int = 4,
    on_example: Callable[[ExampleResult], None] | None = None,
) -> list[ScoreResult]:
    """Score each (template, generation) arm on `rows`, requests interleaved example by example
    (row 1 arm A, row 1 arm B, row 2 arm A, ...), `concurrency` at a time; results in row order."""
    results = [ScoreResult(template=template) for template, _ in arms]
    stopper = _Stopper()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [(i, pool.submit(_score_one, lm, template, row, input_fields, label_field, metric,
                                   (generation or GenerationConfig()).request_kwargs(), stopper))
                   for row in rows for i, (template, generation) in enumerate(arms)]
        try:
            for i, future in futures:
                example = future.result()
                results[i].examples.append(example)
                if on_example:
                    on_example(example)
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise
    return results


def score_template(template: PromptTemplate, rows: Sequence[dict], *, lm, metric: Metric, input_fields: Sequence[str],
                   label_field: str, generation: GenerationConfig | None = None, concurrency: int = 4,
                   on_example: Callable[[ExampleResult], None] | None = None) -> ScoreResult:
    """Score one template on `rows`, `concurrency` requests at a time, results in row order."""
    return score_templates([(template, generation)], rows, lm=lm, metric=metric, input_fields=input_fields,
                           label_field=label_field, concurrency=concurrency, on_example=on_example)[0]
