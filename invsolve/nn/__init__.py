"""Networks shared by the learned solvers (flax NNX modules)."""

from .icnn import ConvICNN, DenseICNN
from .mlp import MLP
from .score import ScoreMLP, ScoreUNet
from .unet import ConvUNet

__all__ = ["MLP", "ConvUNet", "DenseICNN", "ConvICNN", "ScoreUNet", "ScoreMLP"]
