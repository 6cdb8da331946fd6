"""Networks shared by the learned solvers (flax NNX modules)."""

from .mlp import MLP

__all__ = ["MLP"]
