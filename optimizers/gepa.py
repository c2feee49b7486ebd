"""GEPA (DSPy): reflective instruction evolution with a Pareto pool of candidates.

GEPA runs through DSPy unchanged; only its instruction proposer is ours: a short plain-text
prompt (the instruction, a few examples it got wrong with their right answers, one output), which
a 135M model can follow where GEPA's JSON reflection fails and silently proposes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dspy.teleprompt import GEPA
from dspy.teleprompt.gepa.gepa_utils import ScoreWithFeedback

from optimizers.adapter import GOLD_FIELD, OUTPUT_FIELD, clean_proposal
from optimizers.base import Candidate, OptimizationTask, Optimizer
from optimizers.program import dspy_session, program_for, sample_trainset

__all__ = ["GepaOptimizer", "reflection_prompt"]

log = logging.getLogger(__name__)


def reflection_prompt(instruction: str, records: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """Short, plain text: the instruction, a few examples with feedback, a request for one instruction."""
    shown = []
    for record in list(records)[:limit]:
        inputs = record.get("Inputs", {})
        text = " ".join(str(v) for v in inputs.values()) if isinstance(inputs, Mapping) else str(inputs)
        outputs = record.get("Generated Outputs", "")
        reply = outputs.get(OUTPUT_FIELD, outputs) if isinstance(outputs, Mapping) else outputs
        shown.append(f"Input: {text[:300]}\nAnswer given: {str(reply)[:120]}\n{record.get('Feedback', '')}")
    return (
        "Improve the instruction below. Here it is, then examples of how it did.\n\n"
        f"Instruction: {instruction}\n\n" + "\n\n".join(shown) + "\n\n"
        "Write one new instruction that gets these right. Keep the list of allowed answers. "
        "Reply with the instruction only.\n\nNew instruction:"
    )


class GepaOptimizer(Optimizer):
    """DSPy's GEPA with a small-model instruction proposer, within a metric-call budget."""

    name = "gepa"
    min_train = 6
    defaults = {
        "max_metric_calls": 120,  # task evaluations GEPA may spend (its budget)
        "reflection_minibatch_size": 3,  # examples shown to the proposer per reflection
        "temperature": 0.9,  # proposer sampling temperature
        "train_size": 20,  # half trains the reflections, half tracks the Pareto pool
        "num_threads": 4,
    }

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        s = self.settings
        examples = sample_trainset(task, s["train_size"])
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
                                               temperature=float(s["temperature"]),
                                               rollout_id=task.random_seed * 10_000 + len(proposals))
                instruction = clean_proposal(response.choices[0].message.content or "") or candidate[name]
                proposals.append(instruction)
                task.record_proposal(instruction)
                updated[name] = instruction
            return updated

        teleprompter = GEPA(
            metric=metric, max_metric_calls=int(s["max_metric_calls"]),
            reflection_minibatch_size=int(s["reflection_minibatch_size"]), instruction_proposer=propose,
            reflection_lm=proposer_lm, num_threads=int(s["num_threads"]), track_stats=True, use_merge=False,
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
            candidates.append(Candidate(task.seed.with_instruction(instruction).text, self.name,
                                        float(results.val_aggregate_scores[i]), task.generation,
                                        details={"gepa_candidate": i}))
        return candidates
