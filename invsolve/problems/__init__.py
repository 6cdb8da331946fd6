"""Forward models and inverse problems."""

from .._problem import (
    AbstractProblem, GaussianNoise, HasForward, HasLinearOperator, HasResidual, LinearInverse, LinearSystem,
)
from . import blur, flame, phantoms, poisson, tomography, tumor

__all__ = ["AbstractProblem", "GaussianNoise", "HasForward", "HasLinearOperator", "HasResidual", "LinearInverse",
           "LinearSystem", "blur", "flame", "phantoms", "tumor", "poisson", "tomography"]
