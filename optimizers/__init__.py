"""Prompt optimizers behind one interface (`Optimizer.optimize`), found by entry point."""

from optimizers.base import Candidate, OptimizationTask, Optimizer, available_optimizers, get_optimizer

__all__ = ["Candidate", "OptimizationTask", "Optimizer", "available_optimizers", "get_optimizer"]
