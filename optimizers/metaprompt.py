"""Meta-prompt optimization (OPRO-style): the proposer sees past instructions with their scores
and writes a better one. The prompt is short plain text with one output, so small models follow it."""

from __future__ import annotations

import logging
import random
from typing import Any, Literal

from pydantic import Field

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings
from promptyard.evaluation import score_template

__all__ = ["MetaPromptOptimizer", "MetaPromptSettings", "meta_prompt"]

log = logging.getLogger(__name__)


def meta_prompt(scored: list[tuple[str, float]]) -> str:
    """The proposer prompt: past instructions, worst to best, then the request for a better one."""
    history = "\n\n".join(f"Instruction: {instruction}\nScore: {score * 100:.0f}" for instruction, score in scored)
    return (
        "Here are instructions for a task and the score each one got (out of 100).\n\n"
        f"{history}\n\n"
        "Write one new instruction that will get a higher score. Keep the list of allowed answers. "
        "Reply with the instruction only.\n\nNew instruction:"
    )


class MetaPromptSettings(OptimizerSettings):
    """Meta-prompt (OPRO-style): the proposer sees past instructions with their scores."""

    name: Literal["metaprompt"] = "metaprompt"
    rounds: int = Field(3, ge=1, le=50, description="Proposal rounds.")
    proposals_per_round: int = Field(3, ge=1, le=32, description="Proposer calls per round.")
    history: int = Field(4, ge=1, le=50, description="Best instructions (with scores) shown to the proposer.")
    temperature: float = Field(0.9, ge=0, le=2, description="Proposer sampling temperature.")
    train_size: int = Field(30, ge=1, description="Training examples each instruction is scored on.")
    num_threads: int = Field(4, ge=1, le=64, description="Concurrent requests while scoring on train.")


class MetaPromptOptimizer(Optimizer):
    """Rounds of proposals conditioned on the best instructions so far, each scored on train."""

    name = "metaprompt"
    Settings = MetaPromptSettings
    min_train = 4
    settings: MetaPromptSettings

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        s = self.settings
        rows = list(task.trainset)
        random.Random(task.random_seed).shuffle(rows)
        rows = rows[: s.train_size]

        def train_score(instruction: str) -> float:
            result = score_template(task.seed.with_instruction(instruction).value, rows, lm=task_lm,
                                    metric=task.metric, input_fields=task.input_fields, label_field=task.label_field,
                                    generation=task.generation, concurrency=s.num_threads)
            return result.accuracy

        scores = {task.seed.instruction: train_score(task.seed.instruction)}
        rounds = {}
        for round_ in range(s.rounds):
            best = sorted(scores.items(), key=lambda item: item[1])[-s.history:]
            prompt = meta_prompt(best)
            for k in range(s.proposals_per_round):
                response = proposer_lm.forward(messages=[{"role": "user", "content": prompt}],
                                               temperature=s.temperature,
                                               rollout_id=task.random_seed * 1000 + round_ * 100 + k)
                instruction = task.usable(response.choices[0].message.content or "")
                task.record_proposal(instruction)
                if instruction and instruction not in scores:
                    scores[instruction] = train_score(instruction)
                    rounds[instruction] = round_
            log.info("meta-prompt round %d: best train score %.3f", round_ + 1, max(scores.values()))
        proposals = sorted(rounds, key=lambda ins: scores[ins], reverse=True)
        return [Candidate(task.seed.with_instruction(ins).value, self.name, scores[ins], task.generation,
                          details={"round": rounds[ins]}) for ins in proposals]
