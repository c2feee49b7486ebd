"""Evaluation: how good a prompt is, measured on data.

Owns datasets and their cards (Hugging Face `datasets`, deterministic splits, digests; harvested
from MLflow traces with assessments or MLflow evaluation datasets as versioned snapshots), metrics
and the LLM judge, scoring a template over examples, statistics (paired bootstrap, McNemar,
intervals), reference points (the majority label and a uniformly random label on the same rows, and
a prompt tested against them), multi-objective selection, the optimization report, and
`evaluate_prompt` (score one registered version and log it). May import: `promptyard.registry`,
`promptyard.runtime`, `promptyard.errors`.
"""

from promptyard.evaluation.baselines import (
    ConstantTest,
    ReferencePoints,
    against_reference,
    constant_scores,
    reference_points,
    versus_constant,
)
from promptyard.evaluation.data import (
    DatasetCard,
    LoadedDataset,
    dataset_digest,
    list_datasets,
    load_card,
    load_dataset,
)
from promptyard.evaluation.metric_catalog import METRICS, get_metric
from promptyard.evaluation.metrics import Metric
from promptyard.evaluation.report import optimization_report
from promptyard.evaluation.runs import SPLITS, VersionScorer, evaluate_prompt, reference_lines
from promptyard.evaluation.scoring import (
    ExampleResult,
    ScoreResult,
    paired_scores,
    refuse_if_errors,
    score_template,
    score_templates,
)
from promptyard.evaluation.sources import Snapshot, from_evaluation_dataset, from_traces
from promptyard.evaluation.selection import SELECTIONS, Objectives, pareto_front, pareto_plot, select
from promptyard.evaluation.stats import McNemar, PairedComparison, is_binary, mcnemar, mean_interval, paired_bootstrap

__all__ = [
    "METRICS",
    "ConstantTest",
    "ReferencePoints",
    "against_reference",
    "constant_scores",
    "reference_points",
    "versus_constant",
    "SELECTIONS",
    "SPLITS",
    "Snapshot",
    "DatasetCard",
    "ExampleResult",
    "LoadedDataset",
    "McNemar",
    "Metric",
    "Objectives",
    "PairedComparison",
    "ScoreResult",
    "VersionScorer",
    "dataset_digest",
    "evaluate_prompt",
    "from_evaluation_dataset",
    "from_traces",
    "reference_lines",
    "get_metric",
    "is_binary",
    "list_datasets",
    "load_card",
    "load_dataset",
    "mcnemar",
    "mean_interval",
    "optimization_report",
    "paired_bootstrap",
    "pareto_front",
    "pareto_plot",
    "refuse_if_errors",
    "paired_scores",
    "score_template",
    "score_templates",
    "select",
]
