"""Prompt optimizers: one per module behind `Optimizer` (base), found by entry point (catalog).

May import: `promptyard` (registry, evaluation, runtime, errors) and DSPy — never Prefect or
MLflow, and never `flows` or `promptyard.cli`.
"""

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings
from optimizers.bootstrap import BootstrapSettings
from optimizers.catalog import (
    OptimizerChoice,
    PluginOptimizer,
    SettingInfo,
    available_optimizers,
    describe_settings,
    get_optimizer,
    settings_for,
)
from optimizers.copro import CoproSettings
from optimizers.gepa import GepaSettings
from optimizers.metaprompt import MetaPromptSettings
from optimizers.mipro import MiproSettings
from optimizers.output_format import format_keys, label_response_format
from optimizers.simba import SimbaSettings

__all__ = [
    "BootstrapSettings",
    "Candidate",
    "CoproSettings",
    "GepaSettings",
    "MetaPromptSettings",
    "MiproSettings",
    "SimbaSettings",
    "OptimizationTask",
    "Optimizer",
    "OptimizerChoice",
    "OptimizerSettings",
    "PluginOptimizer",
    "SettingInfo",
    "available_optimizers",
    "describe_settings",
    "format_keys",
    "get_optimizer",
    "label_response_format",
    "settings_for",
]
