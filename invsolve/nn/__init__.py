"""Networks shared by the learned solvers (flax NNX modules)."""

from .mlp import MLP
from .unet import ConvUNet

__all__ = ["MLP", "ConvUNet"]
