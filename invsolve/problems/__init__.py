"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, HasResidual, LinearInverse, LinearSystem,
)
from . import flame, phantoms, poisson, tomography, tumor

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "HasResidual", "LinearInverse",
           "LinearSystem", "flame", "phantoms", "tumor", "poisson", "tomography"]
