"""Serving and experiments: prompts in apps, and A/B tests on them.

Owns `PromptClient` (cached reads, last-known-good snapshots, fallback), the two-line
`register_prompt` / `load_prompt`, A/B experiments stored in the registry with their fixed design
(test levels, mixing standard deviations, tolerances), sticky hash assignment, the event store of
exposures and outcomes and its background writer, the sequential (mSPRT) analysis on unit-level
estimates within allocation epochs and its decisions, power planning, the offline A/B comparison
of two versions, and the release loop (`Release`). May import: `promptyard.governance`,
`promptyard.evaluation`, `promptyard.registry`, `promptyard.runtime`, `promptyard.errors`.
"""

from promptyard.serving.analysis import (
    Analysis,
    VersionSummary,
    analyze,
    analyze_outcomes,
    outcomes_of,
    plan_before_start,
    plot_over_time,
)
from promptyard.serving.client import Assignment, PromptClient, ServedPrompt
from promptyard.serving.design import Plan, examples_needed, plan, split_alpha, units_needed
from promptyard.serving.events import EventStore, Observation
from promptyard.serving.experiments import Experiment, Experiments, bucket, choose_version, tag_key
from promptyard.serving.offline_ab import compare_prompts
from promptyard.serving.quick import load_prompt, register_prompt
from promptyard.serving.release import Release, ReleaseStep
from promptyard.serving.sequential import SequentialResult, msprt, sequential_comparison, thompson_weights
from promptyard.serving.units import Outcomes

__all__ = [
    "Analysis",
    "Assignment",
    "EventStore",
    "Experiment",
    "Experiments",
    "Observation",
    "Outcomes",
    "Plan",
    "PromptClient",
    "Release",
    "ReleaseStep",
    "SequentialResult",
    "ServedPrompt",
    "VersionSummary",
    "analyze",
    "analyze_outcomes",
    "bucket",
    "choose_version",
    "compare_prompts",
    "examples_needed",
    "load_prompt",
    "msprt",
    "outcomes_of",
    "plan",
    "plan_before_start",
    "plot_over_time",
    "register_prompt",
    "sequential_comparison",
    "split_alpha",
    "tag_key",
    "thompson_weights",
    "units_needed",
]
