"""GEPA (DSPy): reflective instruction evolution with a Pareto pool of candidates.

GEPA runs through DSPy unchanged; only its instruction proposer is ours: a short plain-text
prompt (the instruction, a few examples it got wrong with their right answers, one output), which
a 135M model can follow where GEPA's JSON reflection fails and silently proposes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings

__all__ = ["GepaOptimizer", "GepaSettings", "reflection_prompt"]

OUTPUT = "prompt_output"  # the task program's single output field (optimizers.adapter.OUTPUT_FIELD)

log = logging.getLogger(__name__)


def reflection_prompt(instruction: str, records: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """Short, plain text: the instruction, a few examples with feedback, a request for one instruction."""
    shown = []
    for record in list(records)[:limit]:
        inputs = record.get("Inputs", {})
        text = " ".join(str(v) for v in inputs.values()) if isinstance(inputs, Mapping) else str(inputs)
        outputs = record.get("Generated Outputs", "")
        reply = outputs.get(OUTPUT, outputs) if isinstance(outputs, Mapping) else outputs
        shown.append(f"Input: {text[:300]}\nAnswer given: {str(reply)[:120]}\n{record.get('Feedback', '')}")
    return (
        "Improve the instruction below. Here it is, then examples of how it did.\n\n"
        f"Instruction: {instruction}\n\n" + "\n\n".join(shown) + "\n\n"
        "Write one new instruction that gets these right. Keep the list of allowed answers. "
        "Reply with the instruction only.\n\nNew instruction:"
    )


class GepaSettings(OptimizerSettings):
    """GEPA: reflective instruction evolution with a Pareto pool, within a metric-call budget."""

    name: Literal["gepa"] = "gepa"
    max_metric_calls: int = Field(120, ge=1, description="Task evaluations GEPA may spend (its own budget).")
    reflection_minibatch_size: int = Field(3, ge=1, le=20, description="Examples shown to the proposer per reflection.")
    temperature: float = Field(0.9, ge=0, le=2, description="Proposer sampling temperature.")
    train_size: int = Field(20, ge=2, description="Training examples: half trains the reflections, half tracks the "
                                                  "Pareto pool.")
    num_threads: int = Field(4, ge=1, le=64, description="Concurrent requests while scoring.")


class GepaOptimizer(Optimizer):
    """DSPy's GEPA with a small-model instruction proposer, within a metric-call budget."""

    name = "gepa"
    Settings = GepaSettings
    min_train = 6
    settings: GepaSettings

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        from dspy.teleprompt import GEPA
        from dspy.teleprompt.gepa.gepa_utils import ScoreWithFeedback

        from optimizers.adapter import GOLD_FIELD, OUTPUT_FIELD
        from optimizers.program import dspy_session, program_for, sample_trainset

        s = self.settings
        examples = sample_trainset(task, s.train_size)
        half = max(1, len(examples) // 2)
        proposals: list[str] = []

        def metric(gold, pred, trace=None, pred_name=None, pred_trace=None, *args, **kwargs):
            reply = getattr(pred, OUTPUT_FIELD, "") or ""
            predicted = task.metric.parse(reply)
            score = task.metric.score(predicted, gold[GOLD_FIELD])
            feedback = ("Correct." if score >= 1 else
                        f"Wrong: the right answer is {gold[GOLD_FIELD]}, the answer given reads as {predicted or 'nothing'}.")
            return ScoreWithFeedback(score=score, feedback=feedback)

        def propose(candidate: dict[str, str], reflective_dataset, components_to_update: list[str]) -> dict[str, str]:
            updated = {}
            for name in components_to_update:
                prompt = reflection_prompt(candidate[name], reflective_dataset.get(name, []))
                response = proposer_lm.forward(messages=[{"role": "user", "content": prompt}],
                                               temperature=s.temperature,
                                               rollout_id=task.random_seed * 10_000 + len(proposals))
                instruction = task.usable(response.choices[0].message.content or "") or candidate[name]
                proposals.append(instruction)
                task.record_proposal(instruction)
                updated[name] = instruction
            return updated

        teleprompter = GEPA(
            metric=metric, max_metric_calls=s.max_metric_calls, reflection_minibatch_size=s.reflection_minibatch_size,
            instruction_proposer=propose, reflection_lm=proposer_lm, num_threads=s.num_threads, track_stats=True,
            use_merge=False,
            seed=task.random_seed,
        )
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(program_for(task), trainset=examples[:half], valset=examples[half:] or examples)
        log.info("GEPA: %d proposals", len(proposals))
        results = best.detailed_results
        seen = {task.seed.instruction.strip()}
        candidates = []
        order = sorted(range(len(results.candidates)), key=lambda i: results.val_aggregate_scores[i], reverse=True)
        for i in order:
            instruction = results.candidates[i].predictors()[0].signature.instructions.strip()
            if instruction in seen:
                continue
            seen.add(instruction)
            candidates.append(Candidate(task.seed.with_instruction(instruction).value, self.name,
                                        float(results.val_aggregate_scores[i]), task.generation,
                                        details={"gepa_candidate": i}))
        return candidates
