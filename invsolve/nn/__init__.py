"""Networks shared by the learned solvers (flax NNX modules)."""

from .icnn import ConvICNN, DenseICNN
from .mlp import MLP, Embedding, FactorizedLinear, FieldNet, PirateNet
from .score import ScoreMLP, ScoreUNet
from .unet import ConvUNet

__all__ = ["MLP", "FieldNet", "PirateNet", "Embedding", "FactorizedLinear", "ConvUNet", "DenseICNN", "ConvICNN",
           "ScoreUNet", "ScoreMLP"]
